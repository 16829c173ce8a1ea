"""Receipts of the messages a worker took from its durable channel (:meth:`sioless.layers.RedisChannelLayer.take`).

A message stays in flight in Redis until its handler has started; then its receipt is
acknowledged, with those of the others started meanwhile, every ``ACK_EVERY`` seconds. A worker
killed with messages in hand loses none whose handler had not started: the next worker of the
shard puts them back first. Those started in the last ``ACK_EVERY`` seconds before the kill are
handled again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds between two acknowledgements of the receipts gathered meanwhile.
ACK_EVERY = 0.05


class Receipts:
    """The receipts of one durable channel's messages whose handlers started, acknowledged in batches."""

    def __init__(self, layer: Any, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self.started: list[bytes] = []
        self.flush_due: asyncio.TimerHandle | None = None
        self.flushing: set[asyncio.Task[None]] = set()

    def on_start(self, receipt: bytes) -> Callable[[], None]:
        """What to call, once, when the handler of the message of ``receipt`` starts."""
        loop = asyncio.get_running_loop()
        called = False

        def started() -> None:
            nonlocal called
            if not called:
                called = True
                self.started.append(receipt)
                if self.flush_due is None:
                    self.flush_due = loop.call_later(ACK_EVERY, self.start_flush)

        return started

    def start_flush(self) -> None:
        self.flush_due = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self.flushing.add(task)
        task.add_done_callback(self.flushing.discard)

    async def settle(self) -> None:
        """Acknowledge everything started, now and for good (before the shard's lease is given up:
        the next worker must not put back what this one handled)."""
        if self.flush_due is not None:
            self.flush_due.cancel()
            self.flush_due = None
        if self.flushing:
            await asyncio.wait(list(self.flushing))
        await self.flush()

    async def flush(self) -> None:
        """Acknowledge every receipt gathered so far (one that fails is handled again after a restart)."""
        receipts, self.started = self.started, []
        if receipts:
            try:
                await self.layer.acknowledge(self.channel, receipts)
            except Exception as exc:
                logger.error("sioless could not acknowledge %d messages of %s: %s", len(receipts), self.channel, exc)
