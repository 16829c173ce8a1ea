"""CONNECT packets: a namespace admitted or refused, its middlewares and connect handler run, the
socket recorded and the client sent CONNECT (or CONNECT_ERROR)."""

from __future__ import annotations

import logging
import secrets
from typing import Any, NamedTuple

from .. import recovery, signals, store
from ..conf import conf
from ..exceptions import ConnectionRefused
from ..fields import EncodedJSON, encoded
from ..names import namespace_group, room_group
from ..namespaces import Registry
from ..protocol.engineio import Frame
from ..protocol.socketio import Packet, PacketType
from ..reasons import DisconnectReason
from ..socket import Socket
from ..writes import OrderedWrites
from .connections import Connection
from .handlers import call_handler, handler_name
from .lifecycle import Lifecycle, groups_of

logger = logging.getLogger(__name__)


class Admitted(NamedTuple):
    """A socket made for a CONNECT, and the ``pid`` and ``offset`` of the socket it recovers, if any."""

    socket: Socket
    pid: str | None
    offset: str | None


class Connector:
    """Connects sockets to namespaces."""

    def __init__(self, namespaces: Registry, life: Lifecycle, writes: OrderedWrites) -> None:
        self.namespaces = namespaces
        self.life = life
        self.writes = writes

    async def admit(self, conn: Connection, packet: Packet) -> Admitted | None:
        """The socket a CONNECT makes (its frames held until CONNECT is sent); None when the
        namespace is refused (unknown, already connected, too many), the client told why."""
        too_long = len(packet.namespace) > conf.MAX_NAME_LENGTH
        handlers = None if too_long else self.namespaces.namespace_for(packet.namespace)
        refusal = None
        if packet.namespace in conn.sockets:
            refusal = "Already connected"
        elif len(conn.sockets) >= conf.MAX_NAMESPACES:
            refusal = "Too many namespaces"
        if handlers is None or refusal is not None:
            await self.refuse(conn, packet.namespace, refusal or "Invalid namespace")
            return None
        auth, pid, offset = _recovery_request(packet.data or {})
        socket = Socket(self.life, conn, secrets.token_urlsafe(15), packet.namespace, auth, handlers)
        socket.sent_before_connect = []
        conn.sockets[packet.namespace] = socket
        return Admitted(socket, pid, offset)

    async def connect_afresh(self, conn: Connection, socket: Socket) -> None:
        """Connect a new socket."""
        if conf.CONNECTION_STATE_RECOVERY:
            socket.pid = secrets.token_urlsafe(18)
            socket.pid_digest = recovery.digest(socket.pid)
        groups = [namespace_group(socket.namespace), room_group(socket.namespace, socket.sid)]
        await self.life.outbound.add_groups(socket, groups)
        await self.run_connect(conn, socket)

    async def run_connect(
        self,
        conn: Connection,
        socket: Socket,
        *,
        steps: bool = True,
        replay: list[Frame] | None = None,
        release: list[str] | None = None,
    ) -> None:
        """Run the middlewares and connect handler (unless not ``steps``: a recovered socket), then
        send CONNECT, what a recovered socket missed (``replay``), and what was sent meanwhile; the
        broadcasts its consumer holds for a recovery (``release``: the log and the offset replayed
        up to) follow them, or are dropped with a refusal."""
        refusal = await self._connect_steps(conn, socket) if steps else None
        if conn.sockets.get(socket.namespace) is not socket:
            return  # the connection closed while the handler ran
        if refusal is None:
            try:
                data = encoded(dict(socket.data))
            except (TypeError, ValueError) as why:
                logger.error(
                    "a connect step of %s stored in socket.data what cannot be saved (%s)", socket.namespace, why
                )
                refusal = ConnectionRefused("Internal server error")
            else:
                await self._accept(conn, socket, data, replay or [], release)
                return
        socket.sent_before_connect = None  # nothing it sent reaches the client
        await self.life.remove(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, tell_client=socket.recovered)
        refused = Packet(PacketType.CONNECT_ERROR, socket.namespace, refusal.body())
        await self.life.outbound.frames(conn, conf.PARSER.encode(refused), drop_held=release[0] if release else None)

    async def refuse(self, conn: Connection, namespace: str, message: str, *, drop_held: str | None = None) -> None:
        """Send CONNECT_ERROR for a namespace no socket was made for (or no longer is: then the
        broadcasts its consumer may hold for it, of the log ``drop_held``, go)."""
        refused = Packet(PacketType.CONNECT_ERROR, namespace, {"message": message})
        await self.life.outbound.frames(conn, conf.PARSER.encode(refused), drop_held=drop_held)

    async def _connect_steps(self, conn: Connection, socket: Socket) -> ConnectionRefused | None:
        """Run the middlewares, then the connect handler, until one refuses; its refusal."""
        handlers = socket.handlers
        for step in [*handlers.middlewares, handlers.handler("connect")]:
            if step is None:
                continue
            try:
                if await call_handler(step, socket, socket.auth) is False:
                    return ConnectionRefused()
            except ConnectionRefused as exc:
                return exc
            except Exception:
                logger.exception("connect step %s in namespace %s raised", handler_name(step), socket.namespace)
                return ConnectionRefused("Internal server error")
            if conn.sockets.get(socket.namespace) is not socket:
                return None
        return None

    async def _accept(
        self, conn: Connection, socket: Socket, data: EncodedJSON, replay: list[Frame], release: list[str] | None
    ) -> None:
        """Record the socket with its ``data`` (and its connection, with its first socket) and send CONNECT."""
        new_session = None
        if not conn.persisted:  # set at once: a second namespace connecting meanwhile writes after it
            conn.persisted = True
            new_session = store.NewSession(conn.shard, conn.reply, conn.handshake.to_record(), conn.upgraded)
        saved = store.NewSocket(
            conn.eio_sid,
            socket.sid,
            socket.namespace,
            socket.auth,
            data,
            set(socket.rooms),
            joined=dict(socket.joined),
            pid_digest=socket.pid_digest,
            new_session=new_session,
        )
        await self.writes.write(store.save_sockets, saved)
        socket.connected = socket.persisted = True
        socket.data.dirty = False
        held, socket.sent_before_connect = socket.sent_before_connect or [], None
        connected = {"sid": socket.sid} if socket.pid is None else {"sid": socket.sid, "pid": socket.pid}
        frames = [*conf.PARSER.encode(Packet(PacketType.CONNECT, socket.namespace, connected)), *replay, *held]
        # Only with CONNECT does the consumer take the socket's broadcasts: they follow it, as what it sent does.
        groups = groups_of(socket) if release is None else None
        await self.life.outbound.frames(conn, frames, release=release, groups=groups)
        self.life.tasks.send_signal(signals.socket_connected, socket)
        if socket.recovered:
            self.life.tasks.send_signal(signals.socket_recovered, socket)
        else:
            for room in socket.rooms - {socket.sid}:  # joined by its middlewares and connect handler
                self.life.tasks.send_signal(signals.room_joined, socket, room=room)


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
