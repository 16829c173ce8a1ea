"""What any process can do to a socket found in the database (Node's ``RemoteSocket``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from .records import DEFAULT_CALL_TIMEOUT, StoredSocket
from .twins import sync_twin


class Reach(Protocol):
    """The server operations a remote socket goes through (:class:`sioless.server.Server`)."""

    async def aemit(self, event: str, *args: Any, to: Any = None, namespace: str = "/") -> None: ...

    async def acall(self, event: str, *args: Any, to: str, namespace: str = "/", timeout: float = ...) -> Any: ...

    async def asockets_join(self, room: str, to: Any = None, namespace: str = "/") -> None: ...

    async def asockets_leave(self, room: str, to: Any = None, namespace: str = "/") -> None: ...

    async def adisconnect_sockets(self, to: Any = None, namespace: str = "/") -> None: ...


@dataclass(frozen=True)
class RemoteSocket(StoredSocket):
    """A socket found by ``fetch_sockets``: its record, and commands its worker carries out,
    wherever it is served. The record is as read: it does not follow the socket's changes."""

    server: Reach = field(kw_only=True, repr=False, compare=False)

    @classmethod
    def of(cls, stored: StoredSocket, server: Reach) -> RemoteSocket:
        """The remote socket of a record."""
        return cls(**{column.name: getattr(stored, column.name) for column in fields(StoredSocket)}, server=server)

    async def aemit(self, event: str, *args: Any) -> None:
        """Send ``event`` to this socket."""
        await self.server.aemit(event, *args, to=self.sid, namespace=self.namespace)

    async def acall(self, event: str, *args: Any, timeout: float = DEFAULT_CALL_TIMEOUT) -> Any:
        """Send ``event`` and return the socket's acknowledgement (see ``Server.acall``)."""
        return await self.server.acall(event, *args, to=self.sid, namespace=self.namespace, timeout=timeout)

    async def ajoin(self, room: str) -> None:
        """Make this socket join ``room``."""
        await self.server.asockets_join(room, to=self.sid, namespace=self.namespace)

    async def aleave(self, room: str) -> None:
        """Make this socket leave ``room``."""
        await self.server.asockets_leave(room, to=self.sid, namespace=self.namespace)

    async def adisconnect(self) -> None:
        """Disconnect this socket (reason "server namespace disconnect")."""
        await self.server.adisconnect_sockets(to=self.sid, namespace=self.namespace)

    emit = sync_twin(aemit)
    call = sync_twin(acall)
    join = sync_twin(ajoin)
    leave = sync_twin(aleave)
    disconnect = sync_twin(adisconnect)
