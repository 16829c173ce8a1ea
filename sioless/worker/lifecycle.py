"""A socket's life after CONNECT: rooms, disconnects, the suspension of one whose connection was
lost, and the close of a whole connection. This is the worker as a socket sees it (``SocketHost``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from channels.layers import BaseChannelLayer
from django.dispatch import Signal

from .. import recovery, signals, store
from ..conf import conf
from ..names import namespace_group, room_group, room_name
from ..protocol.engineio import Frame
from ..protocol.socketio import Packet, PacketType
from ..reasons import DisconnectReason
from ..records import StoredSocket
from ..socket import Socket, redelivered_event
from ..writes import OrderedWrites
from .connections import Connection, Connections, connection_of
from .handlers import Tasks, handler_name
from .outbound import Outbound

logger = logging.getLogger(__name__)


class Lifecycle:
    """Joins, leaves, disconnects and closes, each written to the database and told to the consumer."""

    def __init__(self, connections: Connections, layer: BaseChannelLayer, writes: OrderedWrites, tasks: Tasks) -> None:
        self.connections = connections
        self.outbound = Outbound(layer, connections, drop=self._drop)
        self.writes = writes
        self.tasks = tasks

    @property
    def layer(self) -> BaseChannelLayer:
        """The channel layer (a socket logs what it emits in the layer's packet log)."""
        return self.outbound.layer

    async def send_to(
        self, socket: Socket, frames: list[Frame], *, ack_id: int | None = None, handled: int = 0
    ) -> None:
        """Send a socket's frames to its client (the ack of its event ``ack_id``, if they are one,
        with ``handled`` more of its frames done: see :meth:`Outbound.frames`); those of a socket
        still connecting wait for CONNECT."""
        if socket.sent_before_connect is not None:
            socket.sent_before_connect.extend(frames)
        elif ack_id is None:
            await self.outbound.frames(connection_of(socket), frames, handled=handled)
        else:
            ack, again = (socket.sid, ack_id), redelivered_event.get()
            await self.outbound.frames(connection_of(socket), frames, handled=handled, ack=ack, again=again)

    async def _drop(self, conn: Connection) -> None:
        """Close a connection whose client cannot take what it is sent (its channel is full)."""
        await self.close(conn, DisconnectReason.TRANSPORT_ERROR, tell_client=False)

    def run_callback(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run an ack callback or an outgoing hook in the background."""
        self.tasks.run_handler(callback, *args)

    def send_signal(self, signal: Signal, socket: Socket, **named: Any) -> None:
        """Send one of :mod:`sioless.signals` about ``socket`` in the background."""
        self.tasks.send_signal(signal, socket, **named)

    async def join(self, socket: Socket, room: str) -> None:
        """Put ``socket`` in ``room``; ValueError for a name over ``MAX_NAME_LENGTH``."""
        if room_name(room) not in socket.rooms:
            socket.rooms.add(room)
            socket.joined[room] = joined = int(time.time() * 1000)
            if socket.persisted:
                await self.writes.write(store.add_membership, socket.sid, socket.namespace, room, joined)
            await self.outbound.add_groups(socket, [room_group(socket.namespace, room)])
            if socket.connected:  # the rooms joined while connecting are told after its connect
                self.tasks.send_signal(signals.room_joined, socket, room=room)

    async def leave(self, socket: Socket, room: str) -> None:
        """Take ``socket`` out of ``room`` (not out of the room named by its own sid)."""
        if room in socket.rooms and room != socket.sid:
            socket.rooms.discard(room)
            socket.joined.pop(room, None)
            if socket.persisted:
                await self.writes.write(store.remove_membership, socket.sid, socket.namespace, room)
            await self.outbound.discard_groups(socket, [room_group(socket.namespace, room)], tell_client=True)
            self.tasks.send_signal(signals.room_left, socket, room=room)

    async def disconnect(self, socket: Socket) -> None:
        """End ``socket`` from the server side."""
        conn = connection_of(socket)
        if conn.sockets.get(socket.namespace) is socket:
            await self.outbound.frames(conn, conf.PARSER.encode(Packet(PacketType.DISCONNECT, socket.namespace)))
            await self.remove(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, tell_client=True)

    async def close(self, conn: Connection, reason: DisconnectReason, *, tell_client: bool) -> None:
        """End a whole connection: every socket on it disconnects with ``reason`` (or is suspended
        for its client to recover, when the reason allows it)."""
        if self.connections.pop(conn.eio_sid, None) is None:
            return
        session_gone = None
        with self.writes.together():  # its sockets' removals and suspensions, and its row: one transaction
            for socket in list(conn.sockets.values()):
                if socket.pid_digest is not None and socket.connected and reason in recovery.RECOVERABLE:
                    await self.suspend(socket, reason)
                else:
                    await self.remove(socket, reason, tell_client=False)
            if conn.persisted:
                session_gone = self.writes.enqueue(store.delete_session, conn.eio_sid)
        if session_gone is not None:  # a recovery's claim may come next: the suspensions are written
            await asyncio.shield(session_gone)
        if tell_client:
            await self.outbound.close(conn.reply, reason)

    async def reap(self, sids: list[str]) -> None:
        """Close connections whose server process is gone, with their consumers."""
        reaped = [conn for sid in sids if (conn := self.connections.get(sid)) is not None]
        for conn in reaped:  # told all the same: a process taken for dead may only have been slow
            await self.close(conn, DisconnectReason.TRANSPORT_CLOSE, tell_client=True)
            await self.outbound.leave_heartbeat(conn)
        await self.writes.write(store.delete_sessions, sids)

    async def remove(self, socket: Socket, reason: DisconnectReason, *, tell_client: bool) -> None:
        """Disconnect a socket: forget it, take it out of its groups, run its disconnect handler."""
        connection_of(socket).sockets.pop(socket.namespace, None)
        was_connected, socket.connected = socket.connected, False
        socket.abandon_acks("the socket disconnected")
        removed = None
        if socket.persisted:  # not waited for here (the writes after it keep its order), but by its handler
            socket.persisted = False
            removed = self.writes.enqueue(store.delete_socket, socket.sid)
        await self.outbound.discard_groups(socket, groups_of(socket), tell_client=tell_client)
        logger.debug("socket %s of %s disconnected: %s", socket.sid, socket.namespace, reason)
        if was_connected:
            self.disconnected(socket, str(reason), after=removed)

    def disconnected(self, socket: Socket, reason: str, after: Awaitable[None] | None = None) -> None:
        """Run the socket's disconnect handler, if its namespace has one, and send the signals of
        its disconnect (once ``after`` is done: the database no longer holds the socket, for what
        they read)."""
        handler = socket.handlers.handler("disconnect")
        if handler is not None:
            about = f"disconnect handler {handler_name(handler)} of {socket!r}"
            self.tasks.run_handler(handler, socket, reason, about=about, after=after)
        for room in socket.rooms - {socket.sid}:
            self.tasks.send_signal(signals.room_left, socket, after=after, room=room)
        self.tasks.send_signal(signals.socket_disconnected, socket, after=after, reason=reason)

    async def suspend(self, socket: Socket, reason: DisconnectReason) -> None:
        """Keep a socket whose connection was lost for its client to recover: no disconnect handler
        runs unless it expires."""
        assert socket.pid_digest is not None
        conn = connection_of(socket)
        conn.sockets.pop(socket.namespace, None)
        socket.connected = socket.persisted = False
        socket.abandon_acks("the connection was lost")
        kept = StoredSocket(
            sid=socket.sid,
            eio_sid=conn.eio_sid,
            namespace=socket.namespace,
            auth=socket.auth,
            auth_kept=socket.auth_kept,
            data=dict(socket.data),
            rooms=frozenset(socket.rooms),
            joined=dict(socket.joined),
            handshake=conn.handshake.to_record(),
        )
        self.writes.enqueue(store.suspend_socket, kept, socket.pid_digest, str(reason))  # written with its close
        await self.outbound.discard_groups(socket, groups_of(socket), tell_client=False)
        logger.debug("socket %s of %s suspended: %s", socket.sid, socket.namespace, reason)


def groups_of(socket: Socket) -> list[str]:
    """The channel-layer groups of a socket: its namespace's, and its rooms' (its own sid's too)."""
    return groups_in(socket.namespace, socket.rooms)


def groups_in(namespace: str, rooms: Iterable[str]) -> list[str]:
    """The channel-layer groups of a socket of ``namespace`` in ``rooms``."""
    return [namespace_group(namespace), *(room_group(namespace, room) for room in rooms)]
