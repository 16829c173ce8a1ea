"""The socket.io Admin UI's server side (``sio.instrument()``, as Node's ``@socket.io/admin-ui``
``instrument()`` and python-socketio's ``sio.instrument()``).

The UI connects to the ``/admin`` namespace. It is told the server's features (``config``), every
socket there is (``all_sockets``, read from the database, whichever worker serves them), then each
connect, upgrade, disconnect, join and leave as :mod:`sioless.signals` tells them, in development
mode every event received and sent too, and every 2 s each process's ``server_stats``: a worker's
sockets by namespace, a server process's clients and their traffic (:mod:`sioless.engine_stats`).
Unless read-only it can emit to, make join or leave, and disconnect any sockets, through the same
operations as ``sio`` (so across processes).

Who may connect: by default a Django staff user (the session cookie of a page of a trusted origin,
see Security); with ``auth={"username": ..., "password": <make_password() of it>}``, whoever sends
those; with ``auth=False``, anyone (refused by ``manage.py check`` outside ``DEBUG``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket as sockets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.conf import settings
from django.dispatch import Signal

from . import engine_stats, signals
from .engine_stats import REPORT_INTERVAL, EngineWatch
from .exceptions import ConnectionRefused
from .namespaces import Namespace
from .remote import Reach, RemoteSocket
from .socket import Socket


class Operations(Reach, Protocol):
    """What the Admin UI does through the server (:class:`sioless.server.Server`)."""

    def of(self, namespace: str) -> Namespace: ...

    async def afetch_sockets(self, to: Any = None, namespace: str = "/") -> list[RemoteSocket]: ...


#: What the UI may do to sockets (besides watching them), unless read-only.
COMMANDS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
#: The modes: development tells the UI every event (``ALL_EVENTS``), production only counts.
MODES = ("development", "production")

logger = logging.getLogger(__name__)


class AdminUI:
    """The Admin UI's namespace on ``server``, and what it is told."""

    def __init__(
        self,
        server: Operations,
        *,
        auth: dict[str, str] | bool | None,
        namespace: str,
        read_only: bool,
        mode: str | None = None,
    ) -> None:
        mode = mode or ("development" if settings.DEBUG else "production")
        if mode not in MODES:
            raise ValueError(f"mode is one of {MODES}, not {mode!r}")
        self.server = server
        self.auth = auth
        self.namespace = namespace
        self.read_only = read_only
        self.mode = mode
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
        engine_stats.watch = EngineWatch(self.report_engine)

    def _receivers(self) -> list[tuple[Signal, Any]]:
        """Each signal the UI is told of, with its receiver here."""
        every_event = [(signals.event_received, self.event_received), (signals.event_sent, self.event_sent)]
        return [
            (signals.socket_connected, self.socket_connected),
            (signals.socket_upgraded, self.socket_upgraded),
            (signals.socket_disconnected, self.socket_disconnected),
            (signals.room_joined, self.room_joined),
            (signals.room_left, self.room_left),
            *(every_event if self.mode == "development" else []),
        ]

    def close(self) -> None:
        """Stop telling the UI (its namespace stays registered until the server forgets it)."""
        for signal, receiver in self._receivers():
            signal.disconnect(receiver)
        if engine_stats.watch is not None:
            engine_stats.watch.stop()
            engine_stats.watch = None

    # The UI's connection -----------------------------------------------------------------------

    async def connect(self, socket: Socket, auth: Any) -> None:
        """Admit the UI (or refuse it), then tell it the features and every socket there is."""
        if not await self._admitted(socket, auth if isinstance(auth, dict) else {}):
            raise ConnectionRefused("authentication failed")
        features = ["AGGREGATED_EVENTS", *([] if self.read_only else COMMANDS)]
        if self.mode == "development":
            features.append("ALL_EVENTS")
        await socket.aemit("config", {"supportedFeatures": features})
        every = [
            serialized(
                remote.sid,
                remote.eio_sid,
                remote.namespace,
                remote.data,
                remote.handshake,
                remote.rooms,
                remote.upgraded,
            )
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
            about = serialized(
                socket.sid, socket.eio_sid, socket.namespace, socket.data, handshake, socket.rooms, socket.conn.upgraded
            )
            await self._tell("socket_connected", about, now())

    async def socket_upgraded(self, sender: type, socket: Socket, transport: str, **named: Any) -> None:
        """:data:`~sioless.signals.socket_upgraded`, told to the UI as ``socket_updated``."""
        if socket.namespace != self.namespace:
            await self._tell("socket_updated", {"id": socket.sid, "nsp": socket.namespace, "transport": transport})

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

    async def event_received(self, sender: type, socket: Socket, event: str, args: Any, **named: Any) -> None:
        """:data:`~sioless.signals.event_received`, told to the UI (development mode)."""
        if socket.namespace != self.namespace:
            await self._tell("event_received", socket.namespace, socket.sid, [event, *args], now())

    async def event_sent(self, sender: type, socket: Socket, event: str, args: Any, **named: Any) -> None:
        """:data:`~sioless.signals.event_sent`, told to the UI (development mode)."""
        if socket.namespace != self.namespace:
            await self._tell("event_sent", socket.namespace, socket.sid, [event, *args], now())

    async def report(self, worker: str, connections: Mapping[str, Any]) -> None:
        """Tell the UI a worker's ``server_stats`` (its sockets by namespace; the clients are the
        server processes') every ``REPORT_INTERVAL`` seconds, as a server process its own, for ever."""
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            counts: dict[str, int] = {}
            for conn in connections.values():
                for namespace in conn.sockets:
                    counts[namespace] = counts.get(namespace, 0) + 1
            namespaces = [{"name": name, "socketsCount": count} for name, count in sorted(counts.items())]
            await self._tell_stats(worker, namespaces=namespaces)

    async def report_engine(self, watch: EngineWatch) -> None:
        """Tell the UI a server process's ``server_stats``: its clients and what they sent and were sent."""
        clients, polling = watch.counts()
        server = f"{sockets.gethostname()}#{os.getpid()}"
        await self._tell_stats(server, clients=clients, polling=polling, events=watch.events.take())

    async def _tell_stats(
        self,
        server: str,
        *,
        clients: int = 0,
        polling: int = 0,
        events: list[dict[str, Any]] | None = None,
        namespaces: list[dict[str, Any]] | None = None,
    ) -> None:
        stats = {
            "serverId": server,
            "hostname": sockets.gethostname(),
            "pid": os.getpid(),
            "uptime": time.time() - self.started,
            "clientsCount": clients,
            "pollingClientsCount": polling,
            "aggregatedEvents": events or [],
            "namespaces": namespaces or [],
        }
        try:
            await self._tell("server_stats", stats)
        except Exception:
            logger.warning("server_stats of %s not sent to the Admin UI", server, exc_info=True)

    async def _tell(self, event: str, *args: Any) -> None:
        await self.server.aemit(event, *args, namespace=self.namespace)


def serialized(
    sid: str, eio_sid: str, namespace: str, data: Any, handshake: dict[str, Any], rooms: Any, upgraded: bool
) -> dict[str, Any]:
    """A socket as the Admin UI shows it (on WebSocket once ``upgraded``, else the transport it started on)."""
    issued = float(handshake.get("issued") or 0)
    return {
        "id": sid,
        "clientId": eio_sid,
        "transport": "websocket" if upgraded else handshake.get("query", {}).get("transport", "websocket"),
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
