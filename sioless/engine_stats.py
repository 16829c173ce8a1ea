"""What the connections of one server process do, counted for the socket.io Admin UI.

Node's Admin UI counts its engine: the clients connected (by long-polling, until they upgrade),
the connections opened and closed, the packets and bytes each way. In sioless the engine side is
each daphne (or runserver) process, so each one counts its own and reports them as a server of its
own; the workers report the sockets. Nothing is counted unless the Admin UI is served
(``sio.instrument()`` sets :data:`watch`).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

#: Seconds between two ``server_stats`` of a process (a server process's counts, a worker's sockets).
REPORT_INTERVAL = 2.0


class Client(Protocol):
    """A consumer serving a session (:class:`sioless.consumers.EngineConsumer`), as counted here."""

    closing: bool

    @property
    def polling(self) -> bool:
        """Whether the client is on HTTP long-polling (not upgraded to WebSocket)."""


class EventCounts:
    """Engine events counted by second, type and sub-type: the Admin UI's ``aggregatedEvents``."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, str, str | None], int] = {}

    def add(self, kind: str, sub_type: str | None = None, count: int = 1) -> None:
        """Count ``count`` events of ``kind`` (``sub_type``: a disconnection's reason) this second."""
        key = (int(time.time()) * 1000, kind, sub_type)
        self._counts[key] = self._counts.get(key, 0) + count

    def take(self) -> list[dict[str, Any]]:
        """The counts since the last take, as the UI reads them; counting starts again."""
        counts, self._counts = self._counts, {}
        return [
            {"timestamp": second, "type": kind, **({"subType": sub} if sub else {}), "count": count}
            for (second, kind, sub), count in counts.items()
        ]


class EngineWatch:
    """The clients of this process and their events, reported by ``report`` every
    ``REPORT_INTERVAL`` seconds from the first client on."""

    def __init__(self, report: Callable[[EngineWatch], Awaitable[None]]) -> None:
        self.report = report
        self.clients: weakref.WeakSet[Client] = weakref.WeakSet()
        self.events = EventCounts()
        self._reporting: asyncio.Task[None] | None = None

    def opened(self, client: Client) -> None:
        """A connection opened (an Engine.IO handshake): counted, and the reports start."""
        self.clients.add(client)
        self.events.add("rawConnection")
        if self._reporting is None:
            self._reporting = asyncio.ensure_future(self._report_forever())

    def closed(self, reason: str) -> None:
        """A connection closed, for ``reason``."""
        self.events.add("rawDisconnection", reason)

    def received(self, size: int) -> None:
        """A packet of ``size`` came in (bytes, or characters of a text frame)."""
        self.events.add("packetsIn")
        self.events.add("bytesIn", count=size)

    def sent(self, size: int) -> None:
        """A packet of ``size`` went out."""
        self.events.add("packetsOut")
        self.events.add("bytesOut", count=size)

    def counts(self) -> tuple[int, int]:
        """The clients connected now, and how many of them are on long-polling."""
        connected = [client for client in self.clients if not client.closing]
        return len(connected), sum(client.polling for client in connected)

    def stop(self) -> None:
        """Report no more."""
        if self._reporting is not None:
            self._reporting.cancel()
            self._reporting = None

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            await self.report(self)


#: This process's counts while the Admin UI is served, else None.
watch: EngineWatch | None = None
