"""The worker's record of each Engine.IO connection it serves, and the table of them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from ..conf import conf
from ..namespaces import Namespace
from ..protocol import socketio
from ..records import Handshake, StoredSocket
from ..socket import Socket, SocketHost

#: Namespace connects and disconnects a connection may make a second (each is a database write),
#: past a first burst of ``MAX_NAMESPACES`` plus as many.
NAMESPACE_CHANGES_PER_SECOND = 20


@dataclass
class Connection:
    """One Engine.IO connection as the worker knows it: whose it is, where its consumer listens,
    its sockets by namespace, and how far its client's frames are handled."""

    eio_sid: str
    shard: int
    #: The consumer's channel.
    reply: str
    handshake: Handshake
    user: Any
    sockets: dict[str, Socket] = field(default_factory=dict)
    #: A binary packet whose attachments are still coming, and when it began (time.monotonic()).
    partial: socketio.PartialPacket | None = None
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
    #: The namespace connects and disconnects it may make now (None: a full burst), as of
    #: ``allowance_at`` (time.monotonic()).
    namespace_allowance: float | None = None
    allowance_at: float = 0.0
    #: The client moved from long-polling to its WebSocket.
    upgraded: bool = False

    @property
    def handled(self) -> int:
        """How far the client's frames are handled: what the consumer's window counts from."""
        return self.taken - self.pending

    def may_change_namespaces(self, now: float) -> bool:
        """Count a namespace connect or disconnect; whether the connection is within its
        allowance (a burst of ``MAX_NAMESPACES`` + ``NAMESPACE_CHANGES_PER_SECOND``, refilled at
        ``NAMESPACE_CHANGES_PER_SECOND``)."""
        burst = conf.MAX_NAMESPACES + NAMESPACE_CHANGES_PER_SECOND
        allowance = burst if self.namespace_allowance is None else self.namespace_allowance
        allowance = min(burst, allowance + (now - self.allowance_at) * NAMESPACE_CHANGES_PER_SECOND)
        self.allowance_at = now
        self.namespace_allowance = allowance - 1 if allowance >= 1 else allowance
        return allowance >= 1


class Connections(dict[str, Connection]):
    """The connections the worker serves, by Engine.IO sid."""

    def of_shard(self, shard: int) -> list[Connection]:
        """The connections of one shard."""
        return [conn for conn in self.values() if conn.shard == shard]

    def serves(self, conn: Connection) -> bool:
        """Whether ``conn`` is still served (not closed, not replaced by a revival)."""
        return self.get(conn.eio_sid) is conn


def connection_of(socket: Socket) -> Connection:
    """The worker's record of the connection a socket rides on (the worker makes every socket on one)."""
    return cast(Connection, socket.conn)


def revived_socket(host: SocketHost, conn: Connection, stored: StoredSocket, handlers: Namespace) -> Socket:
    """A socket of ``conn`` as the database kept it, already connected and recorded."""
    socket = Socket(host, conn, stored.sid, stored.namespace, stored.auth, handlers)
    socket.auth_kept = stored.auth_kept
    take_record(socket, stored)
    socket.persisted = True
    return socket


def take_record(socket: Socket, stored: StoredSocket) -> None:
    """Give ``socket`` the sid, data and rooms the database kept for it; it is connected again."""
    socket.sid = stored.sid
    socket.data.update(stored.data)
    socket.data.dirty = False
    socket.rooms = set(stored.rooms)
    socket.joined = dict(stored.joined)
    socket.connected = True
