"""The socket.io Admin UI's server side (``sio.instrument()``, as Node's ``@socket.io/admin-ui``
``instrument()`` and python-socketio's ``sio.instrument()``), in production mode.

The UI connects to the ``/admin`` namespace. It is told the server's features (``config``), every
socket there is (``all_sockets``, read from the database, whichever worker serves them), then each
connect, disconnect, join and leave as :mod:`sioless.signals` tells them, and every 2 s each
worker's ``server_stats``. Unless read-only it can emit to, make join or leave, and disconnect any
sockets, through the same operations as ``sio`` (so across processes).

Who may connect: by default a Django staff user (the session cookie of a page of a trusted origin,
see Security); with ``auth={"username": ..., "password": <make_password() of it>}``, whoever sends
those; with ``auth=False``, anyone (refused by ``manage.py check`` outside ``DEBUG``).
"""

from __future__ import annotations

import asyncio
import os
import socket as sockets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.dispatch import Signal

from . import signals
from .exceptions import ConnectionRefused
from .namespaces import Namespace
from .remote import Reach, RemoteSocket
from .socket import Socket


class Operations(Reach, Protocol):
    """What the Admin UI does through the server (:class:`sioless.server.Server`)."""

    def of(self, namespace: str) -> Namespace: ...

    async def afetch_sockets(self, to: Any = None, namespace: str = "/") -> list[RemoteSocket]: ...


#: Seconds between two ``server_stats`` of a worker.
STATS_INTERVAL = 2.0
#: What the UI may do to sockets (besides watching them), unless read-only.
COMMANDS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]


class AdminUI:
    """The Admin UI's namespace on ``server``, and what it is told."""

    def __init__(
        self, server: Operations, *, auth: dict[str, str] | bool | None, namespace: str, read_only: bool
    ) -> None:
        self.server = server
        self.auth = auth
        self.namespace = namespace
        self.read_only = read_only
        self.started = time.time()
        admin = server.of(namespace)
        admin.on("connect", self.connect)
        if not read_only:
            admin.on("emit", self.emit)
            admin.on("join", self.join)
            admin.on("leave", self.leave)
            admin.on("_disconnect", self.disconnect)
        for signal, receiver in self._receivers():
            signal.connect(receiver, weak=False)

    def _receivers(self) -> list[tuple[Signal, Any]]:
        """Each signal the UI is told of, with its receiver here."""
        return [
            (signals.socket_connected, self.socket_connected),
            (signals.socket_disconnected, self.socket_disconnected),
            (signals.room_joined, self.room_joined),
            (signals.room_left, self.room_left),
        ]

    def close(self) -> None:
        """Stop telling the UI (its namespace stays registered until the server forgets it)."""
        for signal, receiver in self._receivers():
            signal.disconnect(receiver)

    # The UI's connection -----------------------------------------------------------------------

    async def connect(self, socket: Socket, auth: Any) -> None:
        """Admit the UI (or refuse it), then tell it the features and every socket there is."""
        if not await self._admitted(socket, auth if isinstance(auth, dict) else {}):
            raise ConnectionRefused("authentication failed")
        features = ["AGGREGATED_EVENTS", *([] if self.read_only else COMMANDS)]
        await socket.aemit("config", {"supportedFeatures": features})
        every = [
            serialized(remote.sid, remote.eio_sid, remote.namespace, remote.data, remote.handshake, remote.rooms)
            for namespace in await self._namespaces()
            for remote in await self.server.afetch_sockets(namespace=namespace)
        ]
        await socket.aemit("all_sockets", every)

    async def _admitted(self, socket: Socket, auth: dict[str, Any]) -> bool:
        if self.auth is False:
            return True
        if isinstance(self.auth, dict):
            from django.contrib.auth.hashers import check_password

            password, username = str(auth.get("password", "")), auth.get("username")
            correct = await sync_to_async(check_password)(password, str(self.auth.get("password", "")))
            return bool(correct and username == self.auth.get("username"))
        return bool(getattr(socket.user, "is_staff", False) and socket.user.is_active)

    async def _namespaces(self) -> list[str]:
        from . import store

        return [name for name in await sync_to_async(store.namespaces)() if name != self.namespace]

    # The UI's commands ---------------------------------------------------------------------------

    async def emit(self, socket: Socket, namespace: str, to: Any, event: str, *args: Any) -> None:
        """The UI's "emit": ``event`` to the sockets of ``to`` (the whole namespace when empty)."""
        await self.server.aemit(event, *args, to=to or None, namespace=namespace)

    async def join(self, socket: Socket, namespace: str, room: str, to: Any = None) -> None:
        """The UI's "join": the sockets of ``to`` join ``room``."""
        await self.server.asockets_join(room, to=to or None, namespace=namespace)

    async def leave(self, socket: Socket, namespace: str, room: str, to: Any = None) -> None:
        """The UI's "leave": the sockets of ``to`` leave ``room``."""
        await self.server.asockets_leave(room, to=to or None, namespace=namespace)

    async def disconnect(self, socket: Socket, namespace: str, close: bool, to: Any = None) -> None:
        """The UI's "_disconnect": the sockets of ``to`` are disconnected (``close``, which would also
        close their connections, is not told apart)."""
        await self.server.adisconnect_sockets(to=to or None, namespace=namespace)

    # What the UI is told -------------------------------------------------------------------------

    async def socket_connected(self, sender: type, socket: Socket, **named: Any) -> None:
        """:data:`~sioless.signals.socket_connected`, told to the UI."""
        if socket.namespace != self.namespace:
            handshake = socket.handshake.to_record()
            about = serialized(socket.sid, socket.eio_sid, socket.namespace, socket.data, handshake, socket.rooms)
            await self._tell("socket_connected", about, now())

    async def socket_disconnected(self, sender: type, socket: Socket, reason: str, **named: Any) -> None:
        """:data:`~sioless.signals.socket_disconnected`, told to the UI."""
        if socket.namespace != self.namespace:
            await self._tell("socket_disconnected", socket.namespace, socket.sid, reason, now())

    async def room_joined(self, sender: type, socket: Socket, room: str, **named: Any) -> None:
        """:data:`~sioless.signals.room_joined`, told to the UI."""
        if socket.namespace != self.namespace:
            await self._tell("room_joined", socket.namespace, room, socket.sid, now())

    async def room_left(self, sender: type, socket: Socket, room: str, **named: Any) -> None:
        """:data:`~sioless.signals.room_left`, told to the UI."""
        if socket.namespace != self.namespace:
            await self._tell("room_left", socket.namespace, room, socket.sid, now())

    async def report(self, worker: str, connections: Mapping[str, Any]) -> None:
        """Tell the UI a worker's ``server_stats`` every ``STATS_INTERVAL`` seconds, for ever."""
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            counts: dict[str, int] = {}
            for conn in connections.values():
                for namespace in conn.sockets:
                    counts[namespace] = counts.get(namespace, 0) + 1
            stats = {
                "serverId": worker,
                "hostname": sockets.gethostname(),
                "pid": os.getpid(),
                "uptime": time.time() - self.started,
                "clientsCount": len(connections),
                "pollingClientsCount": 0,
                "aggregatedEvents": [],
                "namespaces": [{"name": name, "socketsCount": count} for name, count in sorted(counts.items())],
            }
            await self._tell("server_stats", stats)

    async def _tell(self, event: str, *args: Any) -> None:
        await self.server.aemit(event, *args, namespace=self.namespace)


def serialized(
    sid: str, eio_sid: str, namespace: str, data: Any, handshake: dict[str, Any], rooms: Any
) -> dict[str, Any]:
    """A socket as the Admin UI shows it."""
    issued = float(handshake.get("issued") or 0)
    return {
        "id": sid,
        "clientId": eio_sid,
        "transport": handshake.get("query", {}).get("transport", "websocket"),
        "nsp": namespace,
        "data": dict(data),
        "handshake": {
            "address": handshake.get("address", ""),
            "headers": handshake.get("headers", {}),
            "query": handshake.get("query", {}),
            "secure": False,
            "url": handshake.get("url", ""),
            "issued": issued * 1000,
            "time": datetime.fromtimestamp(issued, UTC).isoformat() if issued else "",
        },
        "rooms": sorted(rooms),
    }


def now() -> str:
    """The time as the Admin UI reads it."""
    return datetime.now(UTC).isoformat()
