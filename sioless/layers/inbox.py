"""Buffers of received messages, each with the one receive waiting on it: a server process's
inbox for one of its consumers, and (in :mod:`.memory`) a development channel."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Waited(Generic[T]):
    """What waits for one receiver, and the receive waiting for the next: a list and a future (an
    ``asyncio.Queue`` costs ~3 KiB, four deques, and every connection has one)."""

    __slots__ = ("messages", "waiter")

    def __init__(self) -> None:
        self.messages: list[T] = []
        self.waiter: asyncio.Future[T] | None = None

    def hand_over(self, item: T) -> bool:
        """Give ``item`` to the receive waiting, if one waits; whether one did."""
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(item)
            return True
        return False

    async def next(self) -> T:
        """The next item (one receive at a time); a receive cancelled as its item came leaves it
        for the next."""
        if self.messages:
            return self.messages.pop(0)
        assert self.waiter is None, "one receive at a time"
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.messages.insert(0, waiter.result())
            raise
        finally:
            if self.waiter is waiter:
                self.waiter = None


class Inbox(Waited[dict[str, Any]]):
    """The messages received for one consumer, at most ``capacity`` of them (past it the oldest is
    dropped, as by channels-redis' buffer)."""

    __slots__ = ("capacity", "used")

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        #: When a message was last put or taken (monotonic seconds).
        self.used = time.monotonic()

    def forgotten(self, now: float, expiry: float) -> bool:
        """Whether no receive waits, and no message was put or taken for ``expiry`` seconds."""
        return self.waiter is None and now - self.used > expiry

    def put(self, message: dict[str, Any]) -> None:
        """Hand a message to the receive waiting, or keep it for the next one."""
        self.used = time.monotonic()
        if self.hand_over(message):
            return
        if len(self.messages) >= self.capacity:
            del self.messages[0]
        self.messages.append(message)

    async def get(self) -> dict[str, Any]:
        """The next message."""
        if self.messages:
            self.used = time.monotonic()
        return await self.next()
