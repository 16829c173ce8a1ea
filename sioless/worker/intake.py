"""What the worker takes from consumers. Control messages go through a table by type; a client's
frame is decoded into a Socket.IO packet and routed by packet type:

====================  =============================================
CONNECT               :mod:`.connect` (or :mod:`.recovering`, with a pid)
DISCONNECT            :meth:`.lifecycle.Lifecycle.remove`
EVENT, BINARY_EVENT   :mod:`.events`
ACK, BINARY_ACK       ``Socket.acknowledge``
====================  =============================================

A frame counts as handled once its handler (if any) has returned; the consumer is credited for
handled frames (:mod:`sioless.flow`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .. import messages, signals, store
from ..conf import conf
from ..exceptions import AckTimeout, ProtocolError, SocketGone
from ..names import shard_of
from ..protocol import socketio
from ..protocol.socketio import Packet, PacketType
from ..reasons import DisconnectReason
from ..records import Handshake
from ..socket import Socket, redelivered_event
from .connect import Connector
from .connections import NAMESPACE_CHANGES_PER_SECOND, Connection, Connections, connection_of
from .events import Events
from .handlers import Tasks, handler_started
from .lifecycle import Lifecycle
from .recovering import Recovering
from .users import load_users, user_of

logger = logging.getLogger(__name__)

Job = Coroutine[Any, Any, None]


def no_receipt() -> None:
    """What starting a message of a layer that is not durable acknowledges: nothing."""


class Intake:
    """Dispatches the messages of consumers (and of other workers' recoveries)."""

    def __init__(
        self,
        connections: Connections,
        life: Lifecycle,
        connector: Connector,
        recovering: Recovering,
        events: Events,
        tasks: Tasks,
    ) -> None:
        self.connections = connections
        self.life = life
        self.outbound = life.outbound
        self.connector = connector
        self.recovering = recovering
        self.events = events
        self.tasks = tasks
        self._control: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            messages.OPEN: self._open,
            messages.REAP: self._reap,
            messages.HAND_OVER: self._hand_over,
        }
        self._connection_control: dict[str, Callable[[Connection, dict[str, Any]], Awaitable[None]]] = {
            messages.SYNC: self._sync,
            messages.CLOSE: self._close,
            messages.COMMAND: self._command,
            messages.UPGRADED: self._upgraded,
        }
        self._commands: dict[str, Callable[[Socket, dict[str, Any]], Awaitable[None]]] = {
            "join": lambda socket, command: life.join(socket, command["room"]),
            "leave": lambda socket, command: life.leave(socket, command["room"]),
            "disconnect": lambda socket, _: life.disconnect(socket),
            "call": self._call,
        }
        self._packets: dict[PacketType, Callable[[Socket, Packet], Awaitable[Job | None]]] = {
            PacketType.DISCONNECT: self._on_disconnect,
            PacketType.EVENT: self._on_event,
            PacketType.BINARY_EVENT: self._on_event,
            PacketType.ACK: self._on_ack,
            PacketType.BINARY_ACK: self._on_ack,
        }

    async def dispatch(self, message: dict[str, Any], on_start: Callable[[], None] = no_receipt) -> None:
        """Act on one message from a consumer; ``on_start`` is called once it is in hand for good
        (the handler of a frame started; any other message acted on)."""
        if message["type"] == messages.FRAME and (conn := self.connections.get(message["eio"])) is not None:
            await self._client_frame(conn, message, on_start)
            return
        try:
            await self._control_message(message)
        finally:
            on_start()

    # Control messages -----------------------------------------------------------

    async def _control_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if (act := self._control.get(kind)) is not None:
            await act(message)
            return
        conn = self.connections.get(message["eio"])
        if conn is None:
            if kind != messages.CLOSE:
                logger.info("closing unknown session %s", message["eio"])
                await self.outbound.close(message["reply"], DisconnectReason.TRANSPORT_ERROR)
        elif (act_on := self._connection_control.get(kind)) is not None:
            await act_on(conn, message)

    async def _open(self, message: dict[str, Any]) -> None:
        """A new connection: known from now on, recorded with its first socket. An OPEN of a known
        connection was handled by a worker that died before its receipt: the connection was revived."""
        if message["eio"] in self.connections:
            return
        handshake = Handshake.from_message(message["handshake"])
        users = await load_users({handshake.user_id})
        shard = shard_of(message["eio"], conf.SHARDS)
        conn = Connection(message["eio"], shard, message["reply"], handshake, user_of(users, handshake.user_id))
        conn.connect_deadline = time.monotonic() + conf.CONNECT_TIMEOUT
        self.connections[conn.eio_sid] = conn

    async def _reap(self, message: dict[str, Any]) -> None:
        """The heartbeat found server processes gone: close their connections."""
        await self.life.reap(message["sessions"])
        logger.info("sioless reaped %d sessions of stopped server processes", len(message["sessions"]))

    async def _hand_over(self, message: dict[str, Any]) -> None:
        self.tasks.spawn(self.recovering.hand_over(message["eio"], message["reply"]))

    async def _sync(self, conn: Connection, message: dict[str, Any]) -> None:
        """The consumer answered a resync (or a probe): how many frames it sent."""
        conn.sync_deadline = None
        if conn.probe is not None and not conn.probe.done():
            conn.probe.set_result(None)
        conn.taken = max(conn.taken, message["sent"])
        await self.outbound.credit(conn)

    async def _close(self, conn: Connection, message: dict[str, Any]) -> None:
        await self.life.close(conn, DisconnectReason(message["reason"]), tell_client=False)

    async def _upgraded(self, conn: Connection, message: dict[str, Any]) -> None:
        """The connection moved from long-polling to its WebSocket: each connected socket's signal
        (one connecting now is told as connected on its WebSocket)."""
        conn.upgraded = True
        if conn.persisted:  # else its row is written with its first socket's, as upgraded
            await self.life.writes.write(store.mark_upgraded, conn.eio_sid)
        for socket in [socket for socket in conn.sockets.values() if socket.connected]:
            self.tasks.send_signal(signals.socket_upgraded, socket, transport="websocket")

    async def _command(self, conn: Connection, message: dict[str, Any]) -> None:
        """A server-level operation (join, leave, disconnect, call) for one socket of the connection."""
        socket = conn.sockets.get(message["namespace"])
        if socket is not None and socket.connected and (act := self._commands.get(message["op"])) is not None:
            await act(socket, message)

    async def _call(self, socket: Socket, message: dict[str, Any]) -> None:
        self.tasks.spawn(self._answer_call(socket, message))

    async def _answer_call(self, socket: Socket, message: dict[str, Any]) -> None:
        """Ask the client for the ack of a server-level call and send its answer to the caller."""
        answer: dict[str, Any] = {"type": messages.ANSWER, "sid": socket.sid}
        with contextlib.suppress(AckTimeout, SocketGone):
            answer["value"] = await socket.acall_encoded(message["event"], message["frames"], message["timeout"])
        await self.outbound.send(message["answer_to"], answer)

    # Client frames ----------------------------------------------------------------

    async def _client_frame(self, conn: Connection, message: dict[str, Any], on_start: Callable[[], None]) -> None:
        """Take one client frame; ``on_start`` is called when its handler starts (at once when it has none)."""
        conn.taken = message.get("seq", conn.taken + 1)
        conn.pending += 1
        redelivered = message.get("redelivered", False)
        job = None
        try:
            packet = self._decode(conn, message["frame"])
            if packet is not None:
                job = await self._route(conn, packet, redelivered=redelivered)
        except ProtocolError as exc:
            if redelivered:  # handled by a worker that died before its receipt, the state it made revived
                logger.info("session %s: a frame handled before a worker's death dropped: %s", conn.eio_sid, exc)
            else:
                logger.info("closing session %s: %s", conn.eio_sid, exc)
                await self.life.close(conn, DisconnectReason.PARSE_ERROR, tell_client=True)
        if job is None:
            on_start()
            await self._frame_done(conn)
        else:
            self.tasks.spawn(self._run_job(job, conn, on_start, redelivered=redelivered))

    async def _run_job(self, job: Job, conn: Connection, on_start: Callable[[], None], *, redelivered: bool) -> None:
        handler_started.set(on_start)  # this task's own context: call_handler calls it as the handler starts
        redelivered_event.set(redelivered)
        try:
            await job
        except Exception:
            logger.exception("sioless failed on a packet of session %s", conn.eio_sid)
        finally:
            on_start()  # a job that ran no handler (a connect without a handler)
            await self._frame_done(conn)

    async def _frame_done(self, conn: Connection) -> None:
        """One more frame handled: report it when the consumer's window needs it."""
        conn.pending -= 1
        if conn.handled - conn.credited >= conf.MAX_IN_FLIGHT // 2:
            await self.outbound.credit(conn)

    def _decode(self, conn: Connection, frame: str | bytes) -> Packet | None:
        """The packet a frame completes, or None while binary attachments are awaited."""
        if conn.partial is None:
            decoded = conf.PARSER.decode(frame, max_attachments=conf.MAX_ATTACHMENTS)
        elif isinstance(frame, bytes):
            decoded = conn.partial.add(frame)
        else:
            raise ProtocolError("text frame while binary attachments are awaited")
        if isinstance(decoded, socketio.PartialPacket):
            if conn.partial is None:
                conn.partial_since = time.monotonic()
            conn.partial = decoded
        else:
            conn.partial = None
        return decoded if isinstance(decoded, Packet) else None

    async def _route(self, conn: Connection, packet: Packet, *, redelivered: bool) -> Job | None:
        """Act on a packet; the handler run it starts, if any. A ``redelivered`` CONNECT of a
        connected namespace was answered by a worker that died before its receipt: not again."""
        if packet.type is PacketType.CONNECT:
            if redelivered and packet.namespace in conn.sockets:
                return None
            return await self._on_connect(conn, packet)
        socket = conn.sockets.get(packet.namespace)
        if socket is None or not socket.connected:
            raise ProtocolError(f"{packet.type.name} for namespace {packet.namespace!r} before CONNECT")
        route = self._packets.get(packet.type)
        if route is None:
            raise ProtocolError(f"clients do not send {packet.type.name}")
        return await route(socket, packet)

    async def _on_connect(self, conn: Connection, packet: Packet) -> Job | None:
        admitted = await self.connector.admit(conn, packet)
        if admitted is None:
            return None
        _count_namespace_change(conn)
        if admitted.pid is not None and admitted.offset is not None:
            return self.recovering.recover_or_connect(conn, admitted.socket, admitted.pid, admitted.offset)
        return self.connector.connect_afresh(conn, admitted.socket)

    async def _on_disconnect(self, socket: Socket, packet: Packet) -> None:
        _count_namespace_change(connection_of(socket))
        await self.life.remove(socket, DisconnectReason.CLIENT_NAMESPACE_DISCONNECT, tell_client=False)

    async def _on_event(self, socket: Socket, packet: Packet) -> Job | None:
        return self.events.job(socket, packet)

    async def _on_ack(self, socket: Socket, packet: Packet) -> None:
        socket.acknowledge(packet.id, packet.data)  # type: ignore[arg-type]


def _count_namespace_change(conn: Connection) -> None:
    """Count a namespace connect or disconnect (each a database write); ProtocolError past the
    connection's allowance."""
    if not conn.may_change_namespaces(time.monotonic()):
        raise ProtocolError(f"over {NAMESPACE_CHANGES_PER_SECOND} namespace connects and disconnects a second")
