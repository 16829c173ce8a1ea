"""The worker's state writes, in order, none lost to a database outage.

A write that fails (the database restarts, a connection went stale) is kept with every later one
behind it and retried, oldest first, until the database takes them: a change a client was told
about (its ack, its CONNECT) is in the database once the database is back, so a worker revived
afterwards sees it. Meanwhile the worker goes on serving from memory; nothing waits for the
backlog but a worker about to reload its state from the database.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

from .store import in_store_thread

logger = logging.getLogger(__name__)

#: Seconds before the first retry of a failed write, and the longest wait between two.
RETRY_FIRST = 0.5
RETRY_MAX = 5.0

Write = tuple[Callable[..., None], tuple[Any, ...]]


class OrderedWrites:
    """Runs state writes in the store's thread, in order; failed ones are retried in order."""

    def __init__(self) -> None:
        self.backlog: collections.deque[Write] = collections.deque()
        self.retrying: asyncio.Task[None] | None = None

    async def write(self, function: Callable[..., None], *args: Any) -> None:
        """Write now, or after the backlog if there is one."""
        if self.backlog:
            self.backlog.append((function, args))
            return
        try:
            await in_store_thread(function, *args)
        except Exception as exc:
            logger.error("sioless could not %s (%s): it is retried until the database takes it", function.__name__, exc)
            self.backlog.append((function, args))
            self.retrying = asyncio.get_running_loop().create_task(self.retry())

    async def retry(self) -> None:
        """Write the backlog, oldest first, waiting longer after each failure."""
        delay = RETRY_FIRST
        while self.backlog:
            function, args = self.backlog[0]
            try:
                await in_store_thread(function, *args)
            except Exception:
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            self.backlog.popleft()
        logger.info("sioless wrote its backlog of state changes: the database has caught up")

    async def caught_up(self, timeout: float | None = None) -> bool:
        """Wait until the backlog is written (at most ``timeout`` seconds); whether it is."""
        if self.retrying is not None and not self.retrying.done():
            await asyncio.wait([self.retrying], timeout=timeout)
        return not self.backlog
