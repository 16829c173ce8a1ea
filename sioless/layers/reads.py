"""Reading a server process's channel from Redis, a batch at a time: popped in Redis' wait (Redis
7's ``BZMPOP``: one request a wake-up), or, before Redis 7, taken by a script that keeps the batch
in an in-flight backup until the next take (so a take whose answer was lost loses nothing), then
a wait for one message. A read cancelled while it waits loses nothing either: the wait is
shielded, and what it brings is put back first in line. A pop whose answer is lost with its
connection (Redis killed as it answered) loses what it took, as channels-redis' ``BZPOPMIN``
does: messages to a process's consumers are not durable (a worker's channel is)."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Coroutine
from typing import Any

from redis.exceptions import ResponseError

from .scripts import RECEIVE_SCRIPT, run_script

#: Most messages a server process takes from Redis in one round trip.
RECEIVE_BATCH = 100

Scored = list[tuple[bytes, Any]]


class ProcessChannelReads:
    """The reads of a layer's process channels: how Redis is asked, and what is on its way back."""

    def __init__(self, wait: float, expiry: int) -> None:
        #: Seconds a read waits in Redis before it asks again; seconds an in-flight backup lasts.
        self.wait = wait
        self.expiry = expiry
        #: Whether Redis pops a batch in its wait (``BZMPOP``, Redis 7).
        self.pops_batches = True
        #: By process channel: the token of the batch last taken by script (before Redis 7).
        self.handed_over: dict[str, str] = {}
        #: Messages on their way back to Redis (see :meth:`put_back`), kept from the garbage collector.
        self.putting_back: set[asyncio.Future[Any]] = set()

    async def next_batch(self, connection: Any, key: str) -> list[bytes]:
        """Up to ``RECEIVE_BATCH`` messages of the process channel ``key``; none if none came
        within the wait."""
        if self.pops_batches:
            return await self.pop_batch(connection, key)
        return await self.take_batch(connection, key)

    async def pop_batch(self, connection: Any, key: str) -> list[bytes]:
        """The next batch, popped in Redis' wait for its first message. On a Redis before 7, none,
        and the reads take batches by script from then on."""

        async def pop() -> Scored:
            popped = await connection.bzmpop(self.wait, 1, [key], min=True, count=RECEIVE_BATCH)
            return [] if popped is None else [(member, score) for member, score in popped[1]]

        try:
            return [member for member, _ in await self.shielded(connection, key, pop())]
        except ResponseError as exc:
            if "unknown command" not in str(exc).lower():
                raise
            self.pops_batches = False
            return []

    async def take_batch(self, connection: Any, key: str) -> list[bytes]:
        """The messages waiting, taken by script into the in-flight backup; if none waits, the next
        one, popped in Redis' wait (a request more a wake-up than :meth:`pop_batch`)."""
        keys = [key, f"{key}$inflight", f"{key}$inflight-batch"]
        token = uuid.uuid4().hex
        arguments = [RECEIVE_BATCH, self.handed_over.get(key, ""), token, self.expiry]
        batch = await run_script(connection, RECEIVE_SCRIPT, keys, *arguments)
        self.handed_over[key] = token
        if batch:
            return list(batch[0::2])

        async def pop() -> Scored:
            popped = await connection.bzpopmin(key, timeout=self.wait)
            return [] if popped is None else [(popped[1], popped[2])]

        return [member for member, _ in await self.shielded(connection, key, pop())]

    async def shielded(self, connection: Any, key: str, pop: Coroutine[Any, Any, Scored]) -> Scored:
        """What a blocking ``pop`` of the channel ``key`` took, each message with its score; if the
        read is cancelled meanwhile (the reader stopped), what the pop takes goes back."""
        popping = asyncio.ensure_future(pop)
        try:
            return await asyncio.shield(popping)
        except asyncio.CancelledError:
            popping.add_done_callback(functools.partial(self.put_back, connection, key))
            raise

    def put_back(self, connection: Any, key: str, popping: asyncio.Future[Scored]) -> None:
        """Put what a pop whose read was cancelled took back in its channel, with the scores it had
        (first in line, for the next read)."""
        if popping.cancelled() or popping.exception() is not None or not popping.result():
            return
        putting_back = asyncio.ensure_future(connection.zadd(key, {m: float(score) for m, score in popping.result()}))
        self.putting_back.add(putting_back)
        putting_back.add_done_callback(self.putting_back.discard)
