"""A server process's buffer of received messages for one of its consumers."""

from __future__ import annotations

import asyncio
import time
from typing import Any


class Inbox:
    """The messages received for one consumer, at most ``capacity`` of them (past it the oldest is
    dropped, as by channels-redis' buffer), and the receive waiting for the next one. An
    ``asyncio.Queue`` costs ~3 KiB a connection (four deques); this, a list and a future."""

    __slots__ = ("capacity", "messages", "used", "waiter")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.messages: list[dict[str, Any]] = []
        self.waiter: asyncio.Future[dict[str, Any]] | None = None
        #: When a message was last put or taken (monotonic seconds).
        self.used = time.monotonic()

    def forgotten(self, now: float, expiry: float) -> bool:
        """Whether no receive waits, and no message was put or taken for ``expiry`` seconds."""
        return self.waiter is None and now - self.used > expiry

    def put(self, message: dict[str, Any]) -> None:
        """Hand a message to the receive waiting, or keep it for the next one."""
        self.used = time.monotonic()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(message)
            return
        if len(self.messages) >= self.capacity:
            del self.messages[0]
        self.messages.append(message)

    async def get(self) -> dict[str, Any]:
        """The next message (one receive at a time); a receive cancelled as its message came
        leaves it for the next."""
        if self.messages:
            self.used = time.monotonic()
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
