"""The worker's state writes, in order, those asked for meanwhile in one transaction, none lost
to a database outage, none stalling the others.

A write waits for the one under way, then goes with every other write asked for meanwhile in one
transaction: one commit and one hop to the store's thread for them all (a burst of connections
writes a row each; a commit each bounded the connections a second, and SQLite's cost a sync to
disk each).

A write that fails because the database is away (it restarts, a connection went stale) is kept
with every later one behind it and retried, oldest first, until the database takes them: a change
a client was told about (its ack, its CONNECT) is in the database once the database is back, so a
worker revived afterwards sees it. Meanwhile the worker goes on serving from memory; nothing waits
for the backlog but a worker about to reload its state from the database. The backlog holds at
most ``MAX_BACKLOG`` writes: past it, an outage that long loses changes, and says so.

A write that fails for any other reason (a value the database cannot store) can never succeed:
it is dropped with an error logged, and the writes around it are made without it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from django.db import InterfaceError, OperationalError, transaction

from .store import in_store_thread, save_sockets

logger = logging.getLogger(__name__)

#: Seconds before the first retry of a failed write, and the longest wait between two.
RETRY_FIRST = 0.5
RETRY_MAX = 5.0
#: Most writes kept while the database is away; later ones are dropped, with an error logged.
MAX_BACKLOG = 100_000
#: What a database outage raises: a write that failed with it is kept and retried.
OUTAGE = (OperationalError, InterfaceError)

Write = tuple[Callable[..., None], tuple[Any, ...]]
#: Writes whose calls in a row are made as one, their arguments joined (an insert a table for a
#: burst of connections, not one a connection).
MERGED: frozenset[Callable[..., None]] = frozenset({save_sockets})


class OrderedWrites:
    """Runs state writes in the store's thread, in order, those waiting together in one
    transaction; those an outage refused are retried in order."""

    def __init__(self) -> None:
        self.backlog: collections.deque[Write] = collections.deque()
        self.retrying: asyncio.Task[None] | None = None
        #: The writes asked for while one was under way, each with its caller's future.
        self.waiting: list[tuple[Write, asyncio.Future[None]]] = []
        self.writing: asyncio.Task[None] | None = None
        #: Writes dropped because the backlog was full (since the last outage ended).
        self.lost = 0
        #: Blocks of :meth:`together` open now: no batch starts while one is.
        self._together = 0

    async def write(self, function: Callable[..., None], *args: Any) -> None:
        """Write with the others asked for meanwhile, or after the backlog if there is one; return
        once it is made (or kept for the retries)."""
        written = self.enqueue(function, *args)
        if written is not None:
            await asyncio.shield(written)  # a caller cancelled: its write is made all the same

    def enqueue(self, function: Callable[..., None], *args: Any) -> asyncio.Future[None] | None:
        """Ask for a write, in order with the others, without waiting for it; the future of its
        transaction (None when it goes behind the backlog)."""
        if self.backlog:
            self._keep([(function, args)])
            return None
        loop = asyncio.get_running_loop()
        written = loop.create_future()
        self.waiting.append(((function, args), written))
        self._start()
        return written

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """The writes asked for in this block go in one transaction (with those already waiting):
        no batch starts while it is open. Wait for none of them inside it."""
        self._together += 1
        try:
            yield
        finally:
            self._together -= 1
            self._start()

    def _start(self) -> None:
        """Start writing what waits, unless it is under way or a :meth:`together` block is open."""
        if self.writing is None and self.waiting and not self._together:
            self.writing = asyncio.get_running_loop().create_task(self._write_waiting())

    async def _write_waiting(self) -> None:
        """Write what waits, a transaction at a time, until nothing does."""
        try:
            while self.waiting and not self._together:
                batch, self.waiting = self.waiting, []
                await self._write_batch([write for write, _ in batch])
                for _, written in batch:
                    written.set_result(None)
        finally:
            self.writing = None

    async def _write_batch(self, writes: list[Write]) -> None:
        """Write a batch in one transaction; behind the backlog if there is one. A batch refused
        for another reason than an outage is written a write at a time, without the bad one."""
        if self.backlog:  # the previous batch failed: these go behind it
            self._keep(writes)
            return
        try:
            await in_store_thread(_write_all, writes)
        except OUTAGE as exc:
            self._outage(writes, exc)
        except Exception:
            for at, write in enumerate(writes):
                try:
                    await in_store_thread(_write_all, [write])
                except OUTAGE as exc:
                    self._outage(writes[at:], exc)
                    return
                except Exception as exc:
                    _drop(write, exc)

    def _outage(self, writes: list[Write], exc: Exception) -> None:
        """Keep writes that an outage refused, and retry them until the database is back."""
        logger.error(
            "sioless could not %s (%s): it is retried until the database takes it",
            ", ".join(function.__name__ for function, _ in writes),
            exc,
        )
        self._keep(writes)
        if self.retrying is None or self.retrying.done():
            self.retrying = asyncio.get_running_loop().create_task(self._retry())

    def _keep(self, writes: list[Write]) -> None:
        """Put writes in the backlog, as far as it has room."""
        room = MAX_BACKLOG - len(self.backlog)
        self.backlog.extend(writes[:room])
        if len(writes) > room:
            if not self.lost:
                logger.error("sioless' backlog of %d state changes is full: later changes are lost", MAX_BACKLOG)
            self.lost += len(writes) - max(room, 0)

    async def _retry(self) -> None:
        """Write the backlog, oldest first, waiting longer after each failure."""
        delay = RETRY_FIRST
        while self.backlog:
            write = self.backlog[0]
            try:
                await in_store_thread(_write_all, [write])
            except OUTAGE:
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            except Exception as exc:
                _drop(write, exc)
            self.backlog.popleft()
        if self.lost:
            logger.error("sioless lost %d state changes while the database was away", self.lost)
            self.lost = 0
        logger.info("sioless wrote its backlog of state changes: the database has caught up")

    async def caught_up(self, timeout: float | None = None) -> bool:
        """Wait until every write asked for is made (at most ``timeout`` seconds); whether it is."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while busy := [task for task in (self.writing, self.retrying) if task is not None and not task.done()]:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(busy, timeout=left)
        return not self.backlog


def _drop(write: Write, exc: Exception) -> None:
    """Give up a write that can never succeed."""
    logger.error("sioless dropped a state change it cannot write, %s: %r", write[0].__name__, exc)


def _write_all(writes: list[Write]) -> None:
    """Make writes in one transaction (in the store's thread)."""
    with transaction.atomic():
        for function, args in _merged(writes):
            function(*args)


def _merged(writes: list[Write]) -> list[Write]:
    """The writes, each run of calls of a function of ``MERGED`` made one call (their arguments joined)."""
    calls: list[Write] = []
    for function, args in writes:
        if calls and function in MERGED and calls[-1][0] is function:
            calls[-1] = (function, calls[-1][1] + args)
        else:
            calls.append((function, args))
    return calls
