"""The socket worker: Socket.IO namespace logic and the user's handlers, for some shards.

A shard is served by the worker holding its lease in the database, so a second
worker for the same shards waits as a standby. Serving starts by reviving the
shard's sessions, sockets and rooms from the database, then reads the shard's
channel one message at a time: a connection's packets are taken in the order
they were sent. Handlers run as tasks started in that order (sync handlers one
after another in Django's thread, safe for the ORM). A connection has at most
``MAX_IN_FLIGHT`` frames here or on their way (:mod:`sioless.flow`), so one that
floods delays the others' handlers by at most that many of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from socket import gethostname
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from . import messages, recovery, store
from .conf import conf
from .exceptions import AckTimeout, ConnectionRefused, PayloadError, ProtocolError, SocketGone
from .layers import TAKE_BATCH, group_add_all, group_discard_all, receive_batch
from .names import HEARTBEAT_GROUP, namespace_group, process_of, room_group, room_name, shard_of, worker_channel
from .namespaces import CATCH_ALL, LIFECYCLE_EVENTS, Namespace
from .protocol import socketio
from .protocol.socketio import Packet, PacketType
from .reasons import DisconnectReason
from .receipts import Receipts
from .remote import StoredSocket
from .server import Server
from .socket import Ack, Handshake, Socket
from .store import in_store_thread
from .writes import OrderedWrites

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
#: Most seconds between two looks for connections past CONNECT_TIMEOUT or BINARY_TIMEOUT.
SWEEP_EVERY = 5.0
#: Seconds the consumer of a revived session has to answer the worker's resync before the session
#: is closed as a ghost (its consumer died without a word: a crash while Redis was away).
SYNC_GRACE = 15.0
#: Seconds the consumer of a session holding a socket that its client is recovering on a new
#: connection has to show that its client is still there, before the socket is handed over.
PROBE_GRACE = 2.0
#: Seconds a recovery waits for the worker of that session to answer (it may be restarting).
HAND_OVER_WAIT = PROBE_GRACE + 3.0


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
    #: When the binary packet under way began (time.monotonic()).
    partial_since: float = 0.0
    #: When the connection must have connected a namespace (time.monotonic()); None once checked.
    connect_deadline: float | None = None
    #: Revived from the database: when its consumer must have answered the resync (time.monotonic());
    #: None once it has. A consumer that never answers is gone (a crash it could not report).
    sync_deadline: float | None = None
    #: The client frames taken (the ``seq`` of the last), those of them not handled yet, and how
    #: far the consumer was told they are handled.
    taken: int = 0
    pending: int = 0
    credited: int = 0
    #: A hand-over asked whether the client is there: set when the consumer answers.
    probe: asyncio.Future[None] | None = None
    #: Whether its row is written (or on its way): with its first socket's, or it was revived.
    persisted: bool = False

    @property
    def handled(self) -> int:
        """How far the client's frames are handled: what the consumer's window counts from."""
        return self.taken - self.pending


def _no_receipt() -> None:
    """What starting a message of a layer that is not durable acknowledges: nothing."""


class Worker:
    """Serves the sessions of ``shards``."""

    def __init__(
        self, server: Server, layer: BaseChannelLayer, shards: Iterable[int], *, embedded: bool = False
    ) -> None:
        self.server = server
        self.layer = layer
        self.shards = list(shards)
        #: Inside the one server process of development: the shards are its own, and a session of
        #: any other process is a ghost of a process that stopped.
        self.embedded = embedded
        #: Unique, and says where it runs: a worker of the same host takes over from a dead one at once.
        self.name = f"worker-{gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.sessions: dict[str, EngineSession] = {}
        self.writes = OrderedWrites()
        #: Per shard served: the receipts of the messages taken from its durable channel.
        self._receipts: dict[int, Receipts] = {}
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
        if not await self.writes.caught_up(STOP_GRACE):
            logger.error(
                "sioless worker %s stops with %d state changes not written", self.name, len(self.writes.backlog)
            )
        logger.info("sioless worker %s stopped", self.name)

    def stop(self) -> None:
        """Stop gracefully: finish the message at hand, let handlers end, give the shards up."""
        self._stopping.set()

    async def _serve(self, shard: int) -> None:
        """Hold the shard's lease and serve it; wait as a standby while another worker does.

        An error of Redis or the database (while receiving, renewing the lease, reviving) ends
        the serving, not the worker: it gives the shard up, says so, and serves again as soon as
        it can reach both, backing off meanwhile. It takes no lease while it cannot reach Redis.
        """
        failures = 0
        standing_by = False
        while not self._stopping.is_set():
            try:
                acquired = await self._reachable() and await self._take_lease(shard)
                if not acquired and not standing_by:
                    holder = await in_store_thread(store.lease_holder, shard)
                    logger.info("sioless worker %s stands by for shard %s, served by %s", self.name, shard, holder)
                standing_by = not acquired
            except Exception as exc:
                logger.error("sioless worker %s cannot serve shard %s: %s", self.name, shard, exc)
                acquired = False
            if not acquired:
                await asyncio.sleep(min(LEASE_POLL * 2**failures, LEASE_RENEW))
                failures = min(failures + 1, 5)
                continue
            try:
                await self.writes.caught_up()  # the database must hold what this worker changed
                await self._restore(shard)
                logger.info("sioless worker %s serving shard %s", self.name, shard)
                failures = 0
                await _first_to_end(self._consume(shard), self._keep_lease(shard), self._sweep(shard))
            except Exception:
                logger.exception(
                    "sioless worker %s stopped serving shard %s: it serves again once it can", self.name, shard
                )
            finally:
                try:
                    await self._give_up(shard)
                except Exception as exc:
                    logger.error("sioless worker %s could not give shard %s up cleanly: %s", self.name, shard, exc)
            if not self._stopping.is_set():
                logger.warning("sioless worker %s no longer serves shard %s", self.name, shard)

    async def _reachable(self) -> bool:
        """Whether the channel layer answers (layers that cannot tell are taken at their word)."""
        ping = getattr(self.layer, "ping", None)
        if ping is not None:
            await ping()
        return True

    async def _take_lease(self, shard: int) -> bool:
        """Take or renew the shard's lease; False while another worker holds it. The lease of a
        worker of this host whose process is gone is taken over at once, not after LEASE_TTL."""
        if await in_store_thread(store.acquire_lease, shard, self.name, LEASE_TTL, self.embedded):
            return True
        holder = await in_store_thread(store.lease_holder, shard)
        if holder is None or not _dead_here(holder):
            return False
        taken = await in_store_thread(store.acquire_lease, shard, self.name, LEASE_TTL, False, holder)
        if taken:
            logger.info(
                "sioless worker %s took shard %s over from %s, a process of this host that is gone",
                self.name,
                shard,
                holder,
            )
        return taken

    async def _keep_lease(self, shard: int) -> None:
        """Renew the lease until another worker holds it. While the database cannot be reached,
        serving goes on for as long as the last renewal lasts (less a renewal's interval, for
        clocks): a short database outage pauses nothing; a longer one raises, and the shard is
        given up until the database is back (no other worker can take it meanwhile)."""
        valid_until = time.monotonic() + LEASE_TTL - LEASE_RENEW
        while True:
            await asyncio.sleep(LEASE_RENEW)
            try:
                if not await self._take_lease(shard):
                    return
            except Exception as exc:
                if time.monotonic() >= valid_until:
                    raise
                logger.error("sioless worker %s cannot renew the lease of shard %s: %s", self.name, shard, exc)
                continue
            valid_until = time.monotonic() + LEASE_TTL - LEASE_RENEW

    async def _consume(self, shard: int) -> None:
        """Handle the shard's messages in order until the worker stops. From a durable channel
        (sioless' Redis layer) messages are taken in batches, each staying in flight in Redis until
        its handler has started: what a dead worker had taken and not started is put back first."""
        channel = worker_channel(shard)
        durable = hasattr(self.layer, "take")
        receipts = None
        if durable:
            receipts = self._receipts[shard] = Receipts(self.layer, channel)
            if restored := await self.layer.restore(channel):
                logger.warning("sioless worker %s put back %d messages taken but not started", self.name, restored)
        while not self._stopping.is_set():
            receiving = asyncio.ensure_future(
                self.layer.take(channel) if durable else receive_batch(self.layer, channel, TAKE_BATCH)
            )
            self._receiving[shard] = receiving
            try:
                received = await receiving
            except asyncio.CancelledError:
                if receiving.cancelled() and self._stopping.is_set():
                    return  # stopped while waiting: a message being received stays queued
                raise
            finally:
                del self._receiving[shard]
            if receipts is None:
                batch = [(message, _no_receipt) for message in received]
            else:
                batch = [(message, receipts.on_start(receipt)) for message, receipt in received]
            for message, on_start in batch:
                if self._stopping.is_set():
                    return  # the messages of the batch not started stay in flight: the next worker's
                try:
                    await self.handle(message, on_start)
                except Exception:
                    logger.exception("sioless worker failed on a %s message", message.get("type"))

    async def _sweep(self, shard: int) -> None:
        """Close the connections that connected no namespace within ``CONNECT_TIMEOUT`` (as Node
        does, whatever they do with pings), those whose binary packet is not complete
        ``BINARY_TIMEOUT`` after it began, and revived ones whose consumer never answered; put the
        consumers back in their groups when Redis has lost them (restarted empty, flushed, failed
        over to a replica that was behind)."""
        mark = getattr(self.layer, "mark", None)
        rejoin_due = False
        while True:
            try:
                if mark is not None and await mark(f"shard-{shard}"):
                    rejoin_due = True
                if rejoin_due:
                    await self._rejoin_groups(shard)
                    rejoin_due = False
            except Exception as exc:  # Redis is away, or this was a connection from before it restarted
                logger.warning("sioless worker %s could not check Redis' groups: %s", self.name, exc)
            await asyncio.sleep(min(SWEEP_EVERY, conf.BINARY_TIMEOUT / 2, conf.CONNECT_TIMEOUT / 4))
            if shard == self.shards[0]:
                await self._expire_suspended()
            now = time.monotonic()
            for session in [s for s in self.sessions.values() if s.shard == shard]:
                if session.sync_deadline is not None and session.sync_deadline < now:
                    logger.info("closing session %s: its consumer is gone", session.eio_sid)
                    await self.close_session(session, DisconnectReason.TRANSPORT_CLOSE, tell_client=True)
                    continue
                if session.connect_deadline is not None and session.connect_deadline < now:
                    session.connect_deadline = None
                    if not session.sockets:
                        logger.info("closing session %s: no namespace connected in time", session.eio_sid)
                        await self.close_session(session, DisconnectReason.FORCED_CLOSE, tell_client=True)
                        continue
                if session.partial is not None and session.partial_since < now - conf.BINARY_TIMEOUT:
                    logger.info("closing session %s: its binary packet was not completed in time", session.eio_sid)
                    await self.close_session(session, DisconnectReason.PARSE_ERROR, tell_client=True)

    async def _expire_suspended(self) -> None:
        """End the suspended sockets not recovered within MAX_DISCONNECTION_DURATION (of any shard:
        whichever worker takes one runs its disconnect handler, once). A database error waits for
        the next sweep."""
        try:
            while True:
                expired = await in_store_thread(store.expire_suspended, conf.MAX_DISCONNECTION_DURATION)
                users = await _load_users({stored.handshake.get("user_id") for stored, _ in expired})
                for stored, reason in expired:
                    self._end_suspended(stored, reason, users)
                if len(expired) < store.EXPIRE_BATCH:
                    return
        except Exception as exc:
            logger.warning("sioless worker %s could not end expired suspended sockets: %s", self.name, exc)

    def _end_suspended(self, stored: StoredSocket, reason: str, users: dict[str | None, Any]) -> None:
        """Run the disconnect handler of a suspended socket that expired."""
        logger.debug("suspended socket %s of %s expired", stored.sid, stored.namespace)
        handlers = self.server.namespace_for(stored.namespace)
        handler = handlers.handler("disconnect") if handlers is not None else None
        if handler is None or handlers is None:
            return
        handshake = Handshake.from_message(stored.handshake)
        # no consumer (no reply channel), no shard: what it sends goes nowhere
        lost = EngineSession(stored.eio_sid, -1, "", handshake, _user(users, handshake.user_id))
        socket = self._revive_socket(lost, stored, handlers)
        socket.connected = socket.persisted = False
        self.run_handler(handler, socket, reason, about=f"disconnect handler {_name(handler)} of {socket!r}")

    async def _rejoin_groups(self, shard: int) -> None:
        """Add every consumer of the shard to its groups again: heartbeat, namespaces, rooms."""
        sessions = [session for session in self.sessions.values() if session.shard == shard]
        for session in sessions:
            groups = [group for socket in list(session.sockets.values()) for group in _groups_of(socket)]
            await group_add_all(self.layer, [HEARTBEAT_GROUP, *groups], session.reply)
        if sessions:
            logger.warning("sioless worker %s put %d sessions in their groups again", self.name, len(sessions))

    async def _restore(self, shard: int) -> None:
        """Revive a shard's sessions, sockets and rooms, sending nothing to clients."""
        stored = await in_store_thread(store.load_shard, shard)
        users = await _load_users({row.handshake.get("user_id") for row in stored})
        for row in stored:
            handshake = Handshake.from_message(row.handshake)
            session = EngineSession(row.sid, shard, row.reply_channel, handshake, _user(users, handshake.user_id))
            session.credited = -1  # unknown: the consumer is asked how many frames it sent
            session.persisted = True
            for kept in row.sockets:
                handlers = self.server.namespace_for(kept.namespace)
                if handlers is None:
                    logger.warning("namespace %r is no longer served: socket %s dropped", kept.namespace, kept.sid)
                    continue
                socket = self._revive_socket(session, kept, handlers)
                socket.pid_digest = row.pid_digests.get(kept.sid)
                session.sockets[socket.namespace] = socket
            self.sessions[session.eio_sid] = session
        logger.info("sioless worker %s revived %d sessions of shard %s", self.name, len(stored), shard)
        if self.embedded:
            await self._reap_other_processes(shard)
        sync_deadline = time.monotonic() + SYNC_GRACE
        for session in list(self.sessions.values()):
            if session.shard == shard:
                session.sync_deadline = sync_deadline
                await self._send(session.reply, {"type": messages.CREDIT, "resync": True})

    def _revive_socket(self, session: EngineSession, kept: StoredSocket, handlers: Namespace) -> Socket:
        """A socket of ``session`` as the database kept it."""
        socket = Socket(self, session, kept.sid, kept.namespace, kept.auth, handlers)
        socket.data.update(kept.data)
        socket.data.dirty = False
        socket.rooms.update(kept.rooms)
        socket.connected = socket.persisted = True
        return socket

    async def _reap_other_processes(self, shard: int) -> None:
        """Close the sessions of server processes before this one (development has one process)."""
        this_process = process_of(await self.layer.new_channel())
        ghosts = [s.eio_sid for s in self.sessions.values() if s.shard == shard and process_of(s.reply) != this_process]
        if ghosts:
            await self._reap(shard, ghosts)

    async def _give_up(self, shard: int) -> None:
        """Stop serving a shard: its calls fail, handlers get a moment, what they started is
        acknowledged, the lease goes."""
        shard_sessions = [session for session in self.sessions.values() if session.shard == shard]
        for session in shard_sessions:
            for socket in session.sockets.values():
                socket.abandon_acks("the worker stopped serving it")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STOP_GRACE)
        for session in shard_sessions:
            self.sessions.pop(session.eio_sid, None)
        if (receipts := self._receipts.pop(shard, None)) is not None:
            await receipts.settle()
        await in_store_thread(store.release_lease, shard, self.name)

    # Messages from consumers ----------------------------------------------------

    async def handle(self, message: dict[str, Any], on_start: Callable[[], None] = _no_receipt) -> None:
        """Take one message from a consumer; ``on_start`` is called once it is in hand for good
        (the handler of a frame started; any other message handled)."""
        if message["type"] == messages.FRAME and (session := self.sessions.get(message["eio"])) is not None:
            await self._take(session, message, on_start)
            return
        try:
            await self._handle_other(message)
        finally:
            on_start()

    async def _handle_other(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == messages.OPEN:
            await self._open(message)
            return
        if kind == messages.REAP:
            await self._reap(message["shard"], message["sessions"])
            return
        if kind == messages.HAND_OVER:
            self._spawn(self._hand_over(message["eio"], message["reply"]))
            return
        session = self.sessions.get(message["eio"])
        if session is None:
            if kind != messages.CLOSE:
                logger.info("closing unknown session %s", message["eio"])
                reason = str(DisconnectReason.TRANSPORT_ERROR)
                await self._send(message["reply"], {"type": messages.CLOSE, "reason": reason})
        elif kind == messages.SYNC:
            session.sync_deadline = None
            if session.probe is not None and not session.probe.done():
                session.probe.set_result(None)
            session.taken = max(session.taken, message["sent"])
            await self._credit(session)
        elif kind == messages.CLOSE:
            await self.close_session(session, DisconnectReason(message["reason"]), tell_client=False)
        elif kind == messages.COMMAND:
            await self._command(session, message)

    async def _open(self, message: dict[str, Any]) -> None:
        handshake = Handshake.from_message(message["handshake"])
        users = await _load_users({handshake.user_id})
        shard = shard_of(message["eio"], conf.SHARDS)
        session = EngineSession(message["eio"], shard, message["reply"], handshake, _user(users, handshake.user_id))
        session.connect_deadline = time.monotonic() + conf.CONNECT_TIMEOUT
        self.sessions[session.eio_sid] = session  # its row waits for its first socket's

    async def _reap(self, shard: int, sids: list[str]) -> None:
        """Close sessions of ``shard`` whose server process is gone, with their consumers."""
        reaped = [session for sid in sids if (session := self.sessions.get(sid)) is not None]
        for session in reaped:  # told all the same: a process taken for dead may only have been slow
            await self.close_session(session, DisconnectReason.TRANSPORT_CLOSE, tell_client=True)
            await self.layer.group_discard(HEARTBEAT_GROUP, session.reply)
        await self.writes.write(store.delete_sessions, sids)
        logger.info("sioless worker %s reaped %d sessions of stopped server processes", self.name, len(sids))

    async def _take(self, session: EngineSession, message: dict[str, Any], on_start: Callable[[], None]) -> None:
        """Take one client frame; it counts as handled once its handler (if any) has returned.
        ``on_start`` is called when its handler starts (at once when it has none)."""
        session.taken = message.get("seq", session.taken + 1)
        session.pending += 1
        job = None
        try:
            packet = self._decode(session, message["frame"])
            if packet is not None:
                job = await self._on_packet(session, packet)
        except ProtocolError as exc:
            logger.info("closing session %s: %s", session.eio_sid, exc)
            await self.close_session(session, DisconnectReason.PARSE_ERROR, tell_client=True)
        if job is None:
            on_start()
            await self._handled(session)
        else:
            self._spawn(self._then_handled(job, session, on_start))

    async def _then_handled(
        self, job: Coroutine[Any, Any, None], session: EngineSession, on_start: Callable[[], None]
    ) -> None:
        _on_handler_start.set(on_start)  # this task's own context: _call calls it as the handler starts
        try:
            await job
        finally:
            on_start()  # a job that ran no handler (a connect without a handler)
            await self._handled(session)

    async def _handled(self, session: EngineSession) -> None:
        """One more frame handled: report it when the consumer's window needs it."""
        session.pending -= 1
        if session.handled - session.credited >= conf.MAX_IN_FLIGHT // 2:
            await self._credit(session)

    async def _credit(self, session: EngineSession) -> None:
        """Tell the consumer how far its client's frames are handled."""
        if self.sessions.get(session.eio_sid) is session:
            session.credited = session.handled
            await self._send(session.reply, {"type": messages.CREDIT, "handled": session.handled})

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
        if isinstance(decoded, socketio.PartialPacket):
            if session.partial is None:
                session.partial_since = time.monotonic()
            session.partial = decoded
        else:
            session.partial = None
        return decoded if isinstance(decoded, Packet) else None

    async def _on_packet(self, session: EngineSession, packet: Packet) -> Coroutine[Any, Any, None] | None:
        """Act on a packet; the handler to run for it, if any."""
        socket = session.sockets.get(packet.namespace)
        if packet.type is PacketType.CONNECT:
            return await self._connect(session, packet, already=socket)
        if socket is None or not socket.connected:
            raise ProtocolError(f"{packet.type.name} for namespace {packet.namespace!r} before CONNECT")
        if packet.type is PacketType.DISCONNECT:
            await self._remove(socket, DisconnectReason.CLIENT_NAMESPACE_DISCONNECT, tell_client=False)
        elif packet.type in (PacketType.EVENT, PacketType.BINARY_EVENT):
            return self._event_job(socket, packet)
        elif packet.type in (PacketType.ACK, PacketType.BINARY_ACK):
            socket.acknowledge(packet.id, packet.data)  # type: ignore[arg-type]
        else:
            raise ProtocolError(f"clients do not send {packet.type.name}")
        return None

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
        elif op == "call":
            self._spawn(self._answer_call(socket, message))

    async def _answer_call(self, socket: Socket, message: dict[str, Any]) -> None:
        """Ask the client for the ack of a server-level call and send its answer to the caller."""
        answer: dict[str, Any] = {"type": messages.ANSWER, "sid": socket.sid}
        with contextlib.suppress(AckTimeout, SocketGone):
            answer["value"] = await socket.acall_encoded(message["event"], message["frames"], message["timeout"])
        await self._send(message["answer_to"], answer)

    # Socket.IO ------------------------------------------------------------------

    async def _connect(
        self, session: EngineSession, packet: Packet, *, already: Socket | None
    ) -> Coroutine[Any, Any, None] | None:
        too_long = len(packet.namespace) > conf.MAX_NAME_LENGTH
        handlers = None if too_long else self.server.namespace_for(packet.namespace)
        refusal = None
        if already is not None:
            refusal = "Already connected"
        elif len(session.sockets) >= conf.MAX_NAMESPACES:
            refusal = "Too many namespaces"
        if handlers is None or refusal is not None:
            await self._connect_error(session, packet.namespace, refusal or "Invalid namespace")
            return None
        auth, pid, offset = _recovery_request(packet.data or {})
        socket = Socket(self, session, secrets.token_urlsafe(15), packet.namespace, auth, handlers)
        socket.held = []  # what the connect handler sends waits for the CONNECT packet
        session.sockets[packet.namespace] = socket
        if pid is not None and offset is not None:
            return self._recover_or_connect(session, socket, handlers, pid, offset)
        return self._connect_afresh(session, socket, handlers)

    async def _connect_afresh(self, session: EngineSession, socket: Socket, handlers: Namespace) -> None:
        """Connect a new socket."""
        if conf.CONNECTION_STATE_RECOVERY:
            socket.pid = secrets.token_urlsafe(18)
            socket.pid_digest = recovery.digest(socket.pid)
        await self._add_groups(socket, [namespace_group(socket.namespace), room_group(socket.namespace, socket.sid)])
        await self._run_connect(session, socket, handlers)

    # Connection state recovery --------------------------------------------------

    async def _recover_or_connect(
        self, session: EngineSession, socket: Socket, handlers: Namespace, pid: str, offset: str
    ) -> None:
        """Make ``socket`` the suspended socket of ``pid`` again, sent what it missed after
        ``offset``; a new socket if there is none to recover, or it missed more than the log gives
        back (socket.io's rules; the one it missed is ended then)."""
        pid_digest = recovery.digest(pid)
        claimed = await self._claim(session, socket.namespace, pid_digest, offset)
        if claimed is None:
            await self._connect_afresh(session, socket, handlers)
            return
        stored, reason = claimed
        log = recovery.packet_log(self.layer)
        groups = _groups(socket.namespace, stored.rooms)
        found = await log.missed(socket.namespace, offset, set(groups))
        if found is None:
            logger.info("socket %s of %s missed too much to be recovered: it ends", stored.sid, socket.namespace)
            self._end_suspended(stored, reason, await _load_users({stored.handshake.get("user_id")}))
            await self._connect_afresh(session, socket, handlers)
            return
        if session.sockets.get(socket.namespace) is not socket:  # this connection was lost meanwhile too
            await self.writes.write(store.suspend_socket, stored, pid_digest, str(DisconnectReason.TRANSPORT_CLOSE))
            return
        socket.sid, socket.pid, socket.pid_digest, socket.recovered = stored.sid, pid, pid_digest, True
        if conf.RECOVERY_SKIPS_CONNECT_HANDLERS:
            # as its connect handler left it (a handler run again sees the client's); none kept: the client's
            socket.auth = stored.auth or socket.auth
        socket.data.update(stored.data)
        socket.data.dirty = False
        socket.rooms = set(stored.rooms)
        socket.connected = True  # it was: a refusal now or a lost connection ends it as any other
        await group_add_all(self.layer, groups, session.reply)
        # the consumer holds the broadcasts from now until the missed events are sent; what was
        # logged since the first read is read now (a moment's worth: no bound)
        log_name = namespace_group(socket.namespace)
        await self._send(session.reply, {"type": messages.GROUPS, "add": groups, "discard": [], "hold": log_name})
        missed, read_up_to = found
        since = await log.missed(socket.namespace, read_up_to, set(groups), bounded=False)
        assert since is not None  # only the bound gives None
        missed, last = [*missed, *since[0]], since[1]
        logger.info("socket %s of %s recovered, %d events sent again", socket.sid, socket.namespace, len(missed))
        replay = [frame for entry in missed for frame in entry.sent_frames()]
        await self._run_connect(session, socket, handlers, replay=replay, release=[log_name, last])

    async def _claim(
        self, session: EngineSession, namespace: str, pid_digest: str, offset: str
    ) -> tuple[StoredSocket, str] | None:
        """Take the suspended socket of a pid out of the database, with why it was lost; a connected
        one is handed over first if its consumer does not show its client is still there (the client
        is back on a new connection: the old one's server process died, or has not noticed the loss
        yet). None for an offset that recovers nothing."""
        if not await recovery.packet_log(self.layer).recovers(namespace, offset):
            return None  # a made-up offset: what the socket missed is not known
        max_age = conf.MAX_DISCONNECTION_DURATION
        claimed = await in_store_thread(store.claim_suspended, pid_digest, namespace, max_age)
        if claimed is not None:
            return claimed
        holder = await in_store_thread(store.live_session_of, pid_digest, namespace)
        if holder is None or holder == session.eio_sid or not await self._take_over(holder):
            return None
        return await in_store_thread(store.claim_suspended, pid_digest, namespace, max_age)

    async def _take_over(self, eio_sid: str) -> bool:
        """Ask the worker of session ``eio_sid`` to close it unless its client is there; whether it is closed."""
        answer_to = await self.layer.new_channel()
        worker = worker_channel(shard_of(eio_sid, conf.SHARDS))
        await self._send(worker, {"type": messages.HAND_OVER, "eio": eio_sid, "reply": answer_to})
        try:
            answer = await asyncio.wait_for(self.layer.receive(answer_to), HAND_OVER_WAIT)
        except TimeoutError:
            logger.warning("the worker of session %s did not answer a hand-over", eio_sid)
            return False
        return bool(answer["gone"])

    async def _hand_over(self, eio_sid: str, answer_to: str) -> None:
        """A client recovers a socket of session ``eio_sid`` on a new connection: close the session
        (its sockets suspended) unless its consumer shows within PROBE_GRACE that its client is there."""
        session = self.sessions.get(eio_sid)
        if session is not None and not await self._client_answers(session):
            logger.info("session %s: its client is back on a new connection, its sockets are handed over", eio_sid)
            await self.close_session(session, DisconnectReason.TRANSPORT_CLOSE, tell_client=True)
        await self._send(answer_to, {"type": messages.HANDED_OVER, "gone": eio_sid not in self.sessions})

    async def _client_answers(self, session: EngineSession) -> bool:
        """Whether the session's consumer answers a probe (it does only while its client is there)."""
        session.probe = asyncio.get_running_loop().create_future()
        await self._send(session.reply, {"type": messages.CREDIT, "resync": True, "probe": True})
        try:
            await asyncio.wait_for(session.probe, PROBE_GRACE)
        except TimeoutError:
            return False
        finally:
            session.probe = None
        return True

    async def _suspend(self, socket: Socket, reason: DisconnectReason) -> None:
        """Keep a socket whose connection was lost for its client to recover: no disconnect handler
        runs unless it expires."""
        assert socket.pid_digest is not None
        session = socket._session
        session.sockets.pop(socket.namespace, None)
        socket.connected = socket.persisted = False
        socket.abandon_acks("the connection was lost")
        kept = StoredSocket(
            sid=socket.sid,
            eio_sid=session.eio_sid,
            namespace=socket.namespace,
            auth=socket.auth,
            data=dict(socket.data),
            rooms=frozenset(socket.rooms),
            handshake=session.handshake.to_record(),
        )
        await self.writes.write(store.suspend_socket, kept, socket.pid_digest, str(reason))
        await self._discard_groups(socket, _groups_of(socket), tell_client=False)
        logger.debug("socket %s of %s suspended: %s", socket.sid, socket.namespace, reason)

    # Connecting -----------------------------------------------------------------

    async def _run_connect(
        self,
        session: EngineSession,
        socket: Socket,
        handlers: Namespace,
        *,
        replay: list[str | bytes] | None = None,
        release: list[str] | None = None,
    ) -> None:
        """Run the middlewares and connect handler (not for a recovered socket, by default), then
        send CONNECT, what a recovered socket missed (``replay``), and what was sent meanwhile."""
        refusal: ConnectionRefused | None = None
        skip = socket.recovered and conf.RECOVERY_SKIPS_CONNECT_HANDLERS
        for step in [] if skip else [*handlers.middlewares, handlers.handler("connect")]:
            if step is None:
                continue
            try:
                if await _call(step, socket, socket.auth) is False:
                    refusal = ConnectionRefused()
            except ConnectionRefused as exc:
                refusal = exc
            except Exception:
                logger.exception("connect step %s in namespace %s raised", _name(step), socket.namespace)
                refusal = ConnectionRefused("Internal server error")
            if refusal is not None or session.sockets.get(socket.namespace) is not socket:
                break
        if session.sockets.get(socket.namespace) is not socket:
            return  # the connection closed while the handler ran
        if refusal is not None:
            socket.held = None  # nothing it sent reaches the client
            await self._remove(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, tell_client=socket.recovered)
            refused = Packet(PacketType.CONNECT_ERROR, socket.namespace, refusal.body())
            await self.send_frames(session, socketio.encode(refused), release=release)
            return
        new_session = None
        if not session.persisted:  # set at once: a second namespace connecting meanwhile writes after it
            session.persisted = True
            new_session = store.NewSession(session.shard, session.reply, session.handshake.to_record())
        saved = store.NewSocket(
            session.eio_sid,
            socket.sid,
            socket.namespace,
            socket.auth,
            dict(socket.data),
            set(socket.rooms),
            pid_digest=socket.pid_digest,
            new_session=new_session,
        )
        await self.writes.write(store.save_sockets, saved)
        socket.connected = socket.persisted = True
        socket.data.dirty = False
        held, socket.held = socket.held or [], None
        connected = {"sid": socket.sid} if socket.pid is None else {"sid": socket.sid, "pid": socket.pid}
        connect = Packet(PacketType.CONNECT, socket.namespace, connected)
        frames = [*socketio.encode(connect), *(replay or []), *held]
        # Only with CONNECT does the consumer take the socket's broadcasts: they follow it, as what it sent does.
        await self.send_frames(session, frames, release=release, groups=_groups_of(socket) if release is None else None)

    async def _connect_error(self, session: EngineSession, namespace: str, message: str) -> None:
        refused = Packet(PacketType.CONNECT_ERROR, namespace, {"message": message})
        await self.send_frames(session, socketio.encode(refused))

    def _event_job(self, socket: Socket, packet: Packet) -> Coroutine[Any, Any, None] | None:
        """The run of the handler of an event, if it has one."""
        event, *args = packet.data
        if len(event) > conf.MAX_NAME_LENGTH:
            raise ProtocolError(f"event name of {len(event)} characters")
        if event in LIFECYCLE_EVENTS:
            logger.debug("ignoring event %r sent by %s", event, socket.sid)
            return None
        handler = socket.handlers.handler(event)
        if handler is None:
            catch_all = socket.handlers.handler(CATCH_ALL)
            if catch_all is None:
                logger.debug("no handler for event %r in %s", event, socket.namespace)
                return None
            handler, args = catch_all, [event, *args]
        return self._run_event(socket, event, handler, args, packet.id)

    async def _run_event(
        self, socket: Socket, event: str, handler: Callable[..., Any], args: list[Any], ack_id: int | None
    ) -> None:
        """Run an event's handler and send the client its return value as the ack, if it asked for
        one. A handler that raises, or returns what cannot be encoded, is logged and acks nothing."""
        if takes_ack(handler):  # the handler acknowledges when it wants, if it wants
            ack_id, extra = None, {"ack": Ack(socket, ack_id)}
        else:
            extra = {}
        try:
            result = await _call(handler, socket, *args, **extra)
        except Exception:
            logger.exception("%s raised", _about(handler, event, socket))
            return
        finally:
            await self._save_data(socket)
        if ack_id is not None and socket.connected:
            ack_args = [] if result is None else list(result) if isinstance(result, tuple) else [result]
            try:
                frames = socketio.encode(Packet(PacketType.ACK, socket.namespace, ack_args, ack_id), conf.JSON_ENCODER)
            except PayloadError:
                logger.exception("%s returned an ack that cannot be sent", _about(handler, event, socket))
                return
            await self.send_frames(socket._session, frames, handled=1)

    async def _save_data(self, socket: Socket) -> None:
        """Save ``socket.data`` if a handler changed it; one write at a time, the latest data wins."""
        if socket.saving:
            return  # the save under way writes this change too
        socket.saving = True
        try:
            while socket.data.dirty and socket.persisted:
                socket.data.dirty = False
                await self.writes.write(store.save_data, socket.sid, dict(socket.data))
        finally:
            socket.saving = False

    async def join(self, socket: Socket, room: str) -> None:
        """Put ``socket`` in ``room``; ValueError for a name over ``MAX_NAME_LENGTH``."""
        if room_name(room) not in socket.rooms:
            socket.rooms.add(room)
            if socket.persisted:
                await self.writes.write(store.add_membership, socket.sid, socket.namespace, room)
            await self._add_groups(socket, [room_group(socket.namespace, room)])

    async def leave(self, socket: Socket, room: str) -> None:
        """Take ``socket`` out of ``room`` (not out of the room named by its own sid)."""
        if room in socket.rooms and room != socket.sid:
            socket.rooms.discard(room)
            if socket.persisted:
                await self.writes.write(store.remove_membership, socket.sid, socket.namespace, room)
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
            if socket.pid_digest is not None and socket.connected and reason in recovery.RECOVERABLE:
                await self._suspend(socket, reason)
            else:
                await self._remove(socket, reason, tell_client=False)
        if session.persisted:
            await self.writes.write(store.delete_session, session.eio_sid)
        if tell_client:
            await self._send(session.reply, {"type": messages.CLOSE, "reason": str(reason)})

    async def _remove(self, socket: Socket, reason: DisconnectReason, *, tell_client: bool) -> None:
        session = socket._session
        session.sockets.pop(socket.namespace, None)
        was_connected, socket.connected = socket.connected, False
        socket.abandon_acks("the socket disconnected")
        if socket.persisted:
            socket.persisted = False
            await self.writes.write(store.delete_socket, socket.sid)
        await self._discard_groups(socket, _groups_of(socket), tell_client=tell_client)
        logger.debug("socket %s of %s disconnected: %s", socket.sid, socket.namespace, reason)
        handler = socket.handlers.handler("disconnect")
        if was_connected and handler is not None:
            self.run_handler(handler, socket, str(reason), about=f"disconnect handler {_name(handler)} of {socket!r}")

    # Channel layer --------------------------------------------------------------

    async def _add_groups(self, socket: Socket, groups: list[str]) -> None:
        """Add the socket's consumer to ``groups``; a socket still connecting learns of them at CONNECT."""
        if not socket._session.reply:
            return  # an expired socket, in its disconnect handler: it has no consumer
        await group_add_all(self.layer, groups, socket._session.reply)
        if socket.held is None:
            await self._send(socket._session.reply, {"type": messages.GROUPS, "add": groups, "discard": []})

    async def _discard_groups(self, socket: Socket, groups: list[str], *, tell_client: bool) -> None:
        if not socket._session.reply:
            return
        await group_discard_all(self.layer, groups, socket._session.reply)
        if tell_client:
            await self._send(socket._session.reply, {"type": messages.GROUPS, "add": [], "discard": groups})

    async def send_to(self, socket: Socket, frames: list[str | bytes]) -> None:
        """Send a socket's frames to its client; those of a socket still connecting wait for CONNECT."""
        if socket.held is not None:
            socket.held.extend(frames)
        else:
            await self.send_frames(socket._session, frames)

    async def send_frames(
        self,
        session: EngineSession,
        frames: list[str | bytes],
        *,
        handled: int = 0,
        release: list[str] | None = None,
        groups: list[str] | None = None,
    ) -> None:
        """Send Socket.IO frames to one client, with how far its own frames are handled (counting
        ``handled`` more that are done), the ``groups`` whose broadcasts its consumer takes from
        now on, and the broadcasts held for a recovery to ``release`` after them; a client that
        cannot take them is dropped. A closed session is sent nothing."""
        if self.sessions.get(session.eio_sid) is not session:
            return
        session.credited = max(session.credited, session.handled + handled)
        message: dict[str, Any] = {"type": messages.FRAMES, "frames": frames, "handled": session.credited}
        if release is not None:
            message["release"] = release
        if groups is not None:
            message["groups"] = groups
        if not await self._send(session.reply, message):
            await self.close_session(session, DisconnectReason.TRANSPORT_ERROR, tell_client=False)

    async def _send(self, channel: str, message: dict[str, Any]) -> bool:
        try:
            await self.layer.send(channel, message)
        except ChannelFull:
            logger.warning("channel %s is full: its client is dropped", channel)
            return False
        return True

    # Tasks ----------------------------------------------------------------------

    def run_handler(self, handler: Callable[..., Any], *args: Any, about: str = "") -> None:
        """Run a handler or callback in the background, logging what it raises (``about``: which
        handler of what, for the log)."""

        async def run() -> None:
            try:
                await _call(handler, *args)
            except Exception:
                logger.exception("%s raised", about or _name(handler))

        self._spawn(run())

    def _spawn(self, job: Any) -> None:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _call(handler: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await an async handler; run a sync one in Django's thread, with fresh DB connections. The
    task's ``_on_handler_start`` hook, if any, is called as the handler starts (a sync handler
    may first wait for the thread behind others)."""
    started = _on_handler_start.get()
    if inspect.iscoroutinefunction(handler):
        if started is not None:
            started()
        return await handler(*args, **kwargs)
    if started is None:
        return await database_sync_to_async(handler)(*args, **kwargs)
    loop = asyncio.get_running_loop()

    def start_then_run() -> Any:
        loop.call_soon_threadsafe(started)
        return handler(*args, **kwargs)

    return await database_sync_to_async(start_then_run)()


#: Called as the handler of the message a task handles starts: its receipt is acknowledged then.
_on_handler_start: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "sioless_on_handler_start", default=None
)


@functools.lru_cache(maxsize=1024)
def takes_ack(handler: Callable[..., Any]) -> bool:
    """Whether a handler takes the ack into its own hands: it has a keyword-only ``ack`` parameter."""
    try:
        parameter = inspect.signature(handler).parameters.get("ack")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind is inspect.Parameter.KEYWORD_ONLY


def _name(handler: Callable[..., Any] | None) -> str:
    """A handler's name for the logs: its module and qualified name."""
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)}"


def _about(handler: Callable[..., Any], event: str, socket: Socket) -> str:
    """Which handler ran for what, for the log of its failure."""
    return f"handler {_name(handler)} of event {event!r} in namespace {socket.namespace} (socket {socket.sid})"


def _recovery_request(auth: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    """The CONNECT payload without what connection state recovery reads, the ``pid`` and
    ``offset`` a client recovering a socket sends (None unless recovery is on and both are there)."""
    if not conf.CONNECTION_STATE_RECOVERY:
        return auth, None, None
    pid, offset = auth.get("pid"), auth.get("offset")
    rest = {key: value for key, value in auth.items() if key not in ("pid", "offset")}
    if isinstance(pid, str) and isinstance(offset, str) and len(pid) <= 64 and len(offset) <= 64:
        return rest, pid, offset
    return rest, None, None


def _groups_of(socket: Socket) -> list[str]:
    """The channel-layer groups of a socket: its namespace's, and its rooms' (its own sid's too)."""
    return _groups(socket.namespace, socket.rooms)


def _groups(namespace: str, rooms: Iterable[str]) -> list[str]:
    """The channel-layer groups of a socket of ``namespace`` in ``rooms``."""
    return [namespace_group(namespace), *(room_group(namespace, room) for room in rooms)]


def _dead_here(holder: str) -> bool:
    """Whether a lease holder's name (see Worker.name) is that of a process of this host that is gone."""
    parts = holder.removeprefix("worker-").rsplit("-", 2)
    if len(parts) != 3 or parts[0] != gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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
