"""The socket worker: Socket.IO namespace logic and the user's handlers, for some shards.

A shard is served by the worker holding its lease in the database, so a second
worker for the same shards waits as a standby. Serving starts by reviving the
shard's sessions, sockets and rooms from the database, then reads the shard's
channel one message at a time: a connection's packets are taken in the order
they were sent. Handlers run as tasks started in that order (sync handlers one
after another in Django's thread, safe for the ORM).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from . import messages, store
from .conf import conf
from .exceptions import ConnectionRefused, ProtocolError
from .names import HEARTBEAT_GROUP, namespace_group, process_of, room_group, shard_of, worker_channel
from .namespaces import CATCH_ALL, LIFECYCLE_EVENTS, Namespace
from .protocol import socketio
from .protocol.socketio import Packet, PacketType
from .reasons import DisconnectReason
from .server import Server
from .socket import Handshake, Socket
from .store import in_store_thread

logger = logging.getLogger(__name__)

#: Seconds a shard lease lasts unless renewed: a standby takes over a dead worker's shard within it.
LEASE_TTL = 10.0
#: Seconds between renewals of a held lease, and between a standby's attempts to take one.
LEASE_RENEW = 2.0
LEASE_POLL = 0.5
#: Seconds the handlers of events already taken get to finish when the worker stops.
STOP_GRACE = 30.0
#: Seconds a stopping worker lets a receive under way bring its message, before it cancels the
#: receive (channels-redis can lose a message whose receive is cancelled mid-way).
RECEIVE_GRACE = 1.0


@dataclass
class EngineSession:
    """One Engine.IO connection as the worker knows it."""

    eio_sid: str
    shard: int
    reply: str
    handshake: Handshake
    user: Any
    sockets: dict[str, Socket] = field(default_factory=dict)
    partial: socketio.PartialPacket | None = None


class Worker:
    """Serves the sessions of ``shards``."""

    def __init__(self, server: Server, layer: BaseChannelLayer, shards: Iterable[int]) -> None:
        self.server = server
        self.layer = layer
        self.shards = list(shards)
        self.name = f"worker-{secrets.token_hex(6)}"
        self.sessions: dict[str, EngineSession] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._receiving: dict[int, asyncio.Future[Any]] = {}

    # Serving shards -------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop` is called, then stop gracefully."""
        logger.info("sioless worker %s for shards %s", self.name, self.shards)
        jobs = [asyncio.ensure_future(self._serve(shard)) for shard in self.shards]
        try:
            await self._stopping.wait()
            if self._receiving:
                await asyncio.wait(list(self._receiving.values()), timeout=RECEIVE_GRACE)
            for receiving in list(self._receiving.values()):
                receiving.cancel()  # idle shards: nothing is being received
            await asyncio.wait(jobs, timeout=2 * STOP_GRACE)
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
        logger.info("sioless worker %s stopped", self.name)

    def stop(self) -> None:
        """Stop gracefully: finish the message at hand, let handlers end, give the shards up."""
        self._stopping.set()

    async def _serve(self, shard: int) -> None:
        """Hold the shard's lease and serve it; wait as a standby while another worker does."""
        while not self._stopping.is_set():
            try:
                acquired = await self._take_lease(shard)
            except Exception:
                logger.exception("sioless worker %s cannot reach the database for shard %s", self.name, shard)
                acquired = False
            if not acquired:
                await asyncio.sleep(LEASE_POLL)
                continue
            try:
                await self._restore(shard)
                logger.info("sioless worker %s serving shard %s", self.name, shard)
                await _first_to_end(self._consume(shard), self._keep_lease(shard))
            finally:
                await self._give_up(shard)
            if not self._stopping.is_set():
                logger.warning("sioless worker %s lost the lease of shard %s", self.name, shard)

    async def _take_lease(self, shard: int) -> bool:
        """Take or renew the shard's lease; False while another worker holds it."""
        return await in_store_thread(store.acquire_lease, shard, self.name, LEASE_TTL)

    async def _keep_lease(self, shard: int) -> None:
        """Renew the lease until a renewal fails (or the database cannot be reached)."""
        renewed = True
        while renewed:
            await asyncio.sleep(LEASE_RENEW)
            renewed = await self._take_lease(shard)

    async def _consume(self, shard: int) -> None:
        """Handle the shard's messages in order until the worker stops."""
        channel = worker_channel(shard)
        while not self._stopping.is_set():
            receiving = asyncio.ensure_future(self.layer.receive(channel))
            self._receiving[shard] = receiving
            try:
                message = await receiving
            except asyncio.CancelledError:
                if receiving.cancelled() and self._stopping.is_set():
                    return  # stopped while waiting: a message being received stays queued
                raise
            finally:
                del self._receiving[shard]
            try:
                await self.handle(message)
            except Exception:
                logger.exception("sioless worker failed on a %s message", message.get("type"))

    async def _restore(self, shard: int) -> None:
        """Revive a shard's sessions, sockets and rooms, sending nothing to clients."""
        stored = await in_store_thread(store.load_shard, shard)
        users = await _load_users({row.handshake.get("user_id") for row in stored})
        for row in stored:
            handshake = Handshake.from_message(row.handshake)
            session = EngineSession(row.sid, shard, row.reply_channel, handshake, _user(users, handshake.user_id))
            for kept in row.sockets:
                handlers = self.server.namespace_for(kept.namespace)
                if handlers is None:
                    logger.warning("namespace %r is no longer served: socket %s dropped", kept.namespace, kept.sid)
                    continue
                socket = Socket(self, session, kept.sid, kept.namespace, kept.auth, handlers)
                socket.data.update(kept.data)
                socket.data.dirty = False
                socket.rooms.update(kept.rooms)
                socket.connected = socket.persisted = True
                session.sockets[socket.namespace] = socket
            self.sessions[session.eio_sid] = session
        logger.info("sioless worker %s revived %d sessions of shard %s", self.name, len(stored), shard)

    async def _give_up(self, shard: int) -> None:
        """Stop serving a shard: its calls fail, handlers get a moment, the lease goes."""
        shard_sessions = [session for session in self.sessions.values() if session.shard == shard]
        for session in shard_sessions:
            for socket in session.sockets.values():
                socket.abandon_acks("the worker stopped serving it")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STOP_GRACE)
        for session in shard_sessions:
            self.sessions.pop(session.eio_sid, None)
        await in_store_thread(store.release_lease, shard, self.name)

    # Messages from consumers ----------------------------------------------------

    async def handle(self, message: dict[str, Any]) -> None:
        """Take one message from a consumer."""
        kind = message["type"]
        if kind == messages.OPEN:
            await self._open(message)
            return
        if kind == messages.REAP:
            await self._reap(message["process"], message["shard"])
            return
        session = self.sessions.get(message["eio"])
        if session is None:
            if kind != messages.CLOSE:
                logger.info("closing unknown session %s", message["eio"])
                reason = str(DisconnectReason.TRANSPORT_ERROR)
                await self._send(message["reply"], {"type": messages.CLOSE, "reason": reason})
        elif kind == messages.FRAME:
            await self._receive(session, message["frame"])
        elif kind == messages.CLOSE:
            await self.close_session(session, DisconnectReason(message["reason"]), tell_client=False)
        elif kind == messages.COMMAND:
            await self._command(session, message)

    async def _open(self, message: dict[str, Any]) -> None:
        handshake = Handshake.from_message(message["handshake"])
        users = await _load_users({handshake.user_id})
        shard = shard_of(message["eio"], conf.SHARDS)
        session = EngineSession(message["eio"], shard, message["reply"], handshake, _user(users, handshake.user_id))
        await _persist(store.save_session, session.eio_sid, shard, session.reply, message["handshake"])
        self.sessions[session.eio_sid] = session

    async def _reap(self, process: str, shard: int) -> None:
        """Close the sessions a dead server process had in ``shard``: their consumers are gone."""
        reaped = [s for s in self.sessions.values() if s.shard == shard and process_of(s.reply) == process]
        for session in reaped:
            await self.close_session(session, DisconnectReason.TRANSPORT_CLOSE, tell_client=True)
            await self.layer.group_discard(HEARTBEAT_GROUP, session.reply)
        await _persist(store.delete_process_sessions, process, shard)
        logger.info("sioless worker %s reaped %d sessions of server process %s", self.name, len(reaped), process)

    async def _receive(self, session: EngineSession, frame: str | bytes) -> None:
        try:
            packet = self._decode(session, frame)
            if packet is not None:
                await self._on_packet(session, packet)
        except ProtocolError as exc:
            logger.info("closing session %s: %s", session.eio_sid, exc)
            await self.close_session(session, DisconnectReason.PARSE_ERROR, tell_client=True)

    def _decode(self, session: EngineSession, frame: str | bytes) -> Packet | None:
        """The packet a frame completes, or None while binary attachments are awaited."""
        if isinstance(frame, bytes):
            if session.partial is None:
                raise ProtocolError("binary frame without a binary packet announcing it")
            decoded = session.partial.add(frame)
        else:
            if session.partial is not None:
                raise ProtocolError("text frame while binary attachments are awaited")
            decoded = socketio.decode(frame, max_attachments=conf.MAX_ATTACHMENTS)
        session.partial = decoded if isinstance(decoded, socketio.PartialPacket) else None
        return decoded if isinstance(decoded, Packet) else None

    async def _on_packet(self, session: EngineSession, packet: Packet) -> None:
        socket = session.sockets.get(packet.namespace)
        if packet.type is PacketType.CONNECT:
            await self._connect(session, packet, already=socket)
            return
        if socket is None or not socket.connected:
            raise ProtocolError(f"{packet.type.name} for namespace {packet.namespace!r} before CONNECT")
        if packet.type is PacketType.DISCONNECT:
            await self._remove(socket, DisconnectReason.CLIENT_NAMESPACE_DISCONNECT, tell_client=False)
        elif packet.type in (PacketType.EVENT, PacketType.BINARY_EVENT):
            self._dispatch_event(socket, packet)
        elif packet.type in (PacketType.ACK, PacketType.BINARY_ACK):
            socket.acknowledge(packet.id, packet.data)  # type: ignore[arg-type]
        else:
            raise ProtocolError(f"clients do not send {packet.type.name}")

    async def _command(self, session: EngineSession, message: dict[str, Any]) -> None:
        socket = session.sockets.get(message["namespace"])
        if socket is None or not socket.connected:
            return
        op = message["op"]
        if op == "join":
            await self.join(socket, message["room"])
        elif op == "leave":
            await self.leave(socket, message["room"])
        elif op == "disconnect":
            await self.disconnect_socket(socket)

    # Socket.IO ------------------------------------------------------------------

    async def _connect(self, session: EngineSession, packet: Packet, *, already: Socket | None) -> None:
        handlers = self.server.namespace_for(packet.namespace)
        if handlers is None or already is not None:
            message = "Invalid namespace" if handlers is None else "Already connected"
            await self._connect_error(session, packet.namespace, message)
            return
        socket = Socket(self, session, secrets.token_urlsafe(15), packet.namespace, packet.data or {}, handlers)
        session.sockets[packet.namespace] = socket
        await self._add_groups(socket, [namespace_group(socket.namespace), room_group(socket.namespace, socket.sid)])
        self._spawn(self._run_connect(session, socket, handlers))

    async def _run_connect(self, session: EngineSession, socket: Socket, handlers: Namespace) -> None:
        handler = handlers.handler("connect")
        refusal: ConnectionRefused | None = None
        try:
            if handler is not None and await _call(handler, socket, socket.auth) is False:
                refusal = ConnectionRefused()
        except ConnectionRefused as exc:
            refusal = exc
        except Exception:
            logger.exception("connect handler failed for namespace %s", socket.namespace)
            refusal = ConnectionRefused("Internal server error")
        if session.sockets.get(socket.namespace) is not socket:
            return  # the connection closed while the handler ran
        if refusal is not None:
            await self._remove(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, tell_client=True)
            await self._connect_error(session, socket.namespace, refusal.message, refusal.data)
            return
        rooms = set(socket.rooms)
        await _persist(
            store.save_socket, session.eio_sid, socket.sid, socket.namespace, socket.auth, dict(socket.data), rooms
        )
        socket.connected = socket.persisted = True
        socket.data.dirty = False
        connect = Packet(PacketType.CONNECT, socket.namespace, {"sid": socket.sid})
        await self.send_frames(session, socketio.encode(connect))

    async def _connect_error(self, session: EngineSession, namespace: str, message: str, data: Any = None) -> None:
        body: dict[str, Any] = {"message": message}
        if data is not None:
            body["data"] = data
        await self.send_frames(session, socketio.encode(Packet(PacketType.CONNECT_ERROR, namespace, body)))

    def _dispatch_event(self, socket: Socket, packet: Packet) -> None:
        event, *args = packet.data
        if event in LIFECYCLE_EVENTS:
            logger.debug("ignoring event %r sent by %s", event, socket.sid)
            return
        handler = socket.handlers.handler(event)
        if handler is None:
            catch_all = socket.handlers.handler(CATCH_ALL)
            if catch_all is None:
                logger.debug("no handler for event %r in %s", event, socket.namespace)
                return
            handler, args = catch_all, [event, *args]
        self._spawn(self._run_event(socket, handler, args, packet.id))

    async def _run_event(
        self, socket: Socket, handler: Callable[..., Any], args: list[Any], ack_id: int | None
    ) -> None:
        try:
            result = await _call(handler, socket, *args)
        except Exception:
            logger.exception("handler %s failed in %s", getattr(handler, "__name__", handler), socket.namespace)
            return
        finally:
            await self._save_data(socket)
        if ack_id is not None and socket.connected:
            ack_args = [] if result is None else list(result) if isinstance(result, tuple) else [result]
            ack = Packet(PacketType.ACK, socket.namespace, ack_args, ack_id)
            await self.send_frames(socket._session, socketio.encode(ack))

    async def _save_data(self, socket: Socket) -> None:
        """Save ``socket.data`` if a handler changed it; one write at a time, the latest data wins."""
        if socket.saving:
            return  # the save under way writes this change too
        socket.saving = True
        try:
            while socket.data.dirty and socket.persisted:
                socket.data.dirty = False
                await _persist(store.save_data, socket.sid, dict(socket.data))
        finally:
            socket.saving = False

    async def join(self, socket: Socket, room: str) -> None:
        """Put ``socket`` in ``room``."""
        if room not in socket.rooms:
            socket.rooms.add(room)
            if socket.persisted:
                await _persist(store.add_membership, socket.sid, socket.namespace, room)
            await self._add_groups(socket, [room_group(socket.namespace, room)])

    async def leave(self, socket: Socket, room: str) -> None:
        """Take ``socket`` out of ``room`` (not out of the room named by its own sid)."""
        if room in socket.rooms and room != socket.sid:
            socket.rooms.discard(room)
            if socket.persisted:
                await _persist(store.remove_membership, socket.sid, socket.namespace, room)
            await self._discard_groups(socket, [room_group(socket.namespace, room)], tell_client=True)

    async def disconnect_socket(self, socket: Socket) -> None:
        """End ``socket`` from the server side."""
        if socket._session.sockets.get(socket.namespace) is socket:
            await self.send_frames(socket._session, socketio.encode(Packet(PacketType.DISCONNECT, socket.namespace)))
            await self._remove(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, tell_client=True)

    async def close_session(self, session: EngineSession, reason: DisconnectReason, *, tell_client: bool) -> None:
        """End a whole connection: every socket on it disconnects with ``reason``."""
        if self.sessions.pop(session.eio_sid, None) is None:
            return
        for socket in list(session.sockets.values()):
            await self._remove(socket, reason, tell_client=False)
        await _persist(store.delete_session, session.eio_sid)
        if tell_client:
            await self._send(session.reply, {"type": messages.CLOSE, "reason": str(reason)})

    async def _remove(self, socket: Socket, reason: DisconnectReason, *, tell_client: bool) -> None:
        session = socket._session
        session.sockets.pop(socket.namespace, None)
        was_connected, socket.connected = socket.connected, False
        socket.abandon_acks("the socket disconnected")
        if socket.persisted:
            socket.persisted = False
            await _persist(store.delete_socket, socket.sid)
        groups = [namespace_group(socket.namespace), *(room_group(socket.namespace, r) for r in socket.rooms)]
        await self._discard_groups(socket, groups, tell_client=tell_client)
        logger.debug("socket %s of %s disconnected: %s", socket.sid, socket.namespace, reason)
        handler = socket.handlers.handler("disconnect")
        if was_connected and handler is not None:
            self.run_handler(handler, socket, str(reason))

    # Channel layer --------------------------------------------------------------

    async def _add_groups(self, socket: Socket, groups: list[str]) -> None:
        for group in groups:
            await self.layer.group_add(group, socket._session.reply)
        await self._send(socket._session.reply, {"type": messages.GROUPS, "add": groups, "discard": []})

    async def _discard_groups(self, socket: Socket, groups: list[str], *, tell_client: bool) -> None:
        for group in groups:
            await self.layer.group_discard(group, socket._session.reply)
        if tell_client:
            await self._send(socket._session.reply, {"type": messages.GROUPS, "add": [], "discard": groups})

    async def send_frames(self, session: EngineSession, frames: list[str | bytes]) -> None:
        """Send Socket.IO frames to one client; a client that cannot take them is dropped."""
        if not await self._send(session.reply, {"type": messages.FRAMES, "frames": frames}):
            await self.close_session(session, DisconnectReason.TRANSPORT_ERROR, tell_client=False)

    async def _send(self, channel: str, message: dict[str, Any]) -> bool:
        try:
            await self.layer.send(channel, message)
        except ChannelFull:
            logger.warning("channel %s is full: its client is dropped", channel)
            return False
        return True

    # Tasks ----------------------------------------------------------------------

    def run_handler(self, handler: Callable[..., Any], *args: Any) -> None:
        """Run a handler or callback in the background, logging what it raises."""

        async def run() -> None:
            try:
                await _call(handler, *args)
            except Exception:
                logger.exception("handler %s failed", getattr(handler, "__name__", handler))

        self._spawn(run())

    def _spawn(self, job: Any) -> None:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _call(handler: Callable[..., Any], *args: Any) -> Any:
    """Await an async handler; run a sync one in Django's thread, with fresh DB connections."""
    if inspect.iscoroutinefunction(handler):
        return await handler(*args)
    return await database_sync_to_async(handler)(*args)


async def _persist(write: Callable[..., None], *args: Any) -> None:
    """Run a state write in the store's thread; a failure is logged and the connection goes on."""
    try:
        await in_store_thread(write, *args)
    except Exception:
        logger.exception("sioless could not %s: the database is behind the worker", write.__name__)


async def _first_to_end(*jobs: Any) -> None:
    """Run jobs until the first ends; cancel the others. Its exception, if any, propagates."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


async def _load_users(user_ids: set[str | None]) -> dict[str | None, Any]:
    """Django users by id; ``None`` maps to the anonymous user (to nothing without django.contrib.auth)."""
    if not any(user_ids):
        return _get_users(user_ids)  # no database read: no thread hop on an anonymous connect
    return await in_store_thread(_get_users, user_ids)


def _user(users: dict[str | None, Any], user_id: str | None) -> Any:
    """The user of ``user_id``; the anonymous user when it no longer exists."""
    return users.get(user_id, users.get(None))


def _get_users(user_ids: set[str | None]) -> dict[str | None, Any]:
    from django.apps import apps

    if not apps.is_installed("django.contrib.auth"):
        return {}
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser

    found: dict[str | None, Any] = {None: AnonymousUser()}
    ids = [user_id for user_id in user_ids if user_id is not None]
    if ids:
        for user in get_user_model()._default_manager.filter(pk__in=ids):
            found[str(user.pk)] = user
    return found
