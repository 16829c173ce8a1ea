"""Flow control on the way from a connection to its worker: only the offender pays.

Every connection of a shard shares one channel-layer channel to the shard's worker, and that
channel has a capacity. So that no client can fill it for the others, a connection's
:class:`Outbox` hands at most ``MAX_IN_FLIGHT`` of its client's frames to the worker that the
worker has not finished handling; the worker reports how far it got (``handled``, the sequence
number of the frames it is done with) on the messages it sends back. Frames beyond that window
wait in the outbox, up to ``MAX_BUFFERED`` bytes; a client that pushes past it is closed, alone.

A full channel (``ChannelFull``: many connections at their bound, or a stalled worker) and a
channel layer that cannot be reached are retried with backoff, in order, never answered by
closing whoever happened to send: and the message that ends a session always reaches the worker,
even after its consumer has gone, so disconnect handlers run and rows are removed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from . import messages
from .conf import conf

logger = logging.getLogger(__name__)

#: Bytes a buffered frame counts for beyond its own length: what holding it costs in memory.
FRAME_OVERHEAD = 64
#: Seconds before the first retry of a send the channel layer refused, and the longest wait between two.
RETRY_FIRST = 0.05
RETRY_MAX = 2.0
#: Seconds an outbox keeps retrying before it drops what it holds (the worker's messages expire anyway).
GIVE_UP_AFTER = 600.0

#: Retries under way, kept from the garbage collector: they outlive the consumers that started them.
_retries: set[asyncio.Task[None]] = set()


class Outbox:
    """The messages of one connection to its worker, in order, within the connection's bound."""

    def __init__(self, layer: BaseChannelLayer, channel: str, stamp: dict[str, Any]) -> None:
        self.layer = layer
        self.channel = channel
        #: Fields every message carries (the session's ``eio`` and ``reply``).
        self.stamp = stamp
        #: Client frames handed to the layer, and how many of them the worker has handled.
        self.sent = 0
        self.handled = 0
        #: Messages not yet sent, each with what it costs against MAX_BUFFERED (0: not a client frame).
        self.queue: collections.deque[tuple[dict[str, Any], int]] = collections.deque()
        self.buffered = 0
        self.pumping = False
        self.retry: asyncio.Task[None] | None = None
        self.failing_since: float | None = None

    @property
    def in_flight(self) -> int:
        """Client frames handed to the worker and not yet handled by it."""
        return self.sent - self.handled

    async def frame(self, frame: str | bytes, size: int) -> bool:
        """Pass one client frame of ``size`` bytes on; False when the connection is past its bound."""
        cost = size + FRAME_OVERHEAD
        if self.buffered + cost > conf.MAX_BUFFERED:
            return False
        self.queue.append(({"type": messages.FRAME, "frame": frame}, cost))
        self.buffered += cost
        await self.pump()
        return True

    async def control(self, message: dict[str, Any]) -> None:
        """Pass on a message that is not a client frame (open, command): in order, outside the window."""
        self.queue.append((message, 0))
        await self.pump()

    async def resync(self) -> None:
        """Tell a revived worker how many frames were sent before this message, ahead of the rest
        (a worker that crashed took some it will never report handled)."""
        self.queue.appendleft(({"type": messages.SYNC}, 0))
        await self.pump()

    async def finish(self, message: dict[str, Any]) -> None:
        """End with ``message`` (the session's close), retried until the worker has it, even after
        the consumer is gone. Frames the window holds back are dropped: no report frees it now."""
        room = max(0, conf.MAX_IN_FLIGHT - self.in_flight)
        kept: collections.deque[tuple[dict[str, Any], int]] = collections.deque()
        for queued, cost in self.queue:
            if not cost or room > 0:
                kept.append((queued, cost))
                room -= bool(cost)
        if dropped := len(self.queue) - len(kept):
            logger.info("session %s: %d frames held back dropped at its close", self.stamp["eio"], dropped)
        kept.append((message, 0))
        self.queue = kept
        self.buffered = sum(cost for _, cost in kept)
        await self.pump()

    async def drain(self, seconds: float) -> None:
        """Send what is queued now, trying for up to ``seconds`` (the server process is stopping:
        no retry scheduled for later would run)."""
        deadline = time.monotonic() + seconds
        while self.queue and time.monotonic() < deadline:
            if self.retry is not None:
                self.retry.cancel()
                self.retry = None
            await self.pump()
            if self.queue:
                await asyncio.sleep(RETRY_FIRST)

    async def credit(self, handled: int | None) -> None:
        """The worker has handled the frames up to ``handled``: send what the window now allows."""
        if handled is not None and handled > self.handled:
            self.handled = handled
            await self.pump()

    async def pump(self) -> None:
        """Send queued messages in order while the window allows and the layer takes them."""
        if self.pumping or self.retry is not None:
            return  # the send under way, or the retry scheduled, goes on with the queue
        self.pumping = True
        try:
            while self.queue:
                if self.queue[0][1] and self.in_flight >= conf.MAX_IN_FLIGHT:
                    return  # the worker's next report of handled frames pumps again
                # off the queue while it is sent: a resync may put its message first meanwhile
                queued, cost = self.queue.popleft()
                message = {**queued, **self.stamp}
                if cost:
                    message["seq"] = self.sent + 1
                elif queued["type"] == messages.SYNC:
                    message["sent"] = self.sent
                try:
                    sent = await self.send(message)
                except BaseException:  # cancelled mid-send (a drain at shutdown): keep it for the next try
                    self.queue.appendleft((queued, cost))
                    raise
                if not sent:
                    self.queue.appendleft((queued, cost))
                    return
                if cost:
                    self.sent += 1
                    self.buffered -= cost
        finally:
            self.pumping = False

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one message; on failure schedule a retry of the queue and return False."""
        try:
            await self.layer.send(self.channel, message)
        except ChannelFull:
            self.schedule_retry("is full")
            return False
        except Exception as exc:  # the layer's backend is unreachable: retried like a full channel
            self.schedule_retry(f"cannot be reached ({exc})")
            return False
        self.failing_since = None
        return True

    def schedule_retry(self, why: str) -> None:
        """Try the queue again after a backoff; give up after GIVE_UP_AFTER seconds of failures."""
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
            logger.warning("worker channel %s %s: session %s waits", self.channel, why, self.stamp["eio"])
        failing_for = now - self.failing_since
        if failing_for > GIVE_UP_AFTER:
            logger.error("session %s: %d messages to %s dropped", self.stamp["eio"], len(self.queue), self.channel)
            self.queue.clear()
            self.buffered = 0
            return
        delay = min(RETRY_MAX, max(RETRY_FIRST, failing_for))
        self.retry = asyncio.get_running_loop().create_task(self.retry_after(delay))
        _retries.add(self.retry)
        self.retry.add_done_callback(_retries.discard)

    async def retry_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.retry = None
        await self.pump()
