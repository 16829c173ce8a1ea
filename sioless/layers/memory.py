"""The in-memory channel layer of development (one process), lean at every message."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryLayer

from .copying import copied, copier


class InMemoryChannelLayer(ChannelsInMemoryLayer):
    """Channels' in-memory layer (development: one process), minus the costs it pays at every
    message or that grow with the connections: it sweeps expired messages and memberships at most
    once a second instead of at every message, keeps a channel's queue until a sweep finds it empty
    and unwatched instead of making it again (and checking the channel's name) at every message,
    copies messages without ``copy.deepcopy``, and a group send puts a copy in each member's queue
    in turn (the message's dict alone when nothing in it can change) instead of starting a task
    and a deep copy per member. Its channels name their process uniquely, for the heartbeat."""

    #: Seconds between two sweeps of expired messages, group memberships and unused queues.
    EXPIRED_SWEEP_INTERVAL = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.swept_at = 0.0
        self.process = f"p{uuid.uuid4().hex[:12]}"
        #: How many receives wait on each channel's queue: a sweep drops only queues none waits on.
        self.receiving: collections.Counter[str] = collections.Counter()

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A channel of this process, named after it: a restarted server is never taken for the one before."""
        return f"{prefix}{self.process}.inmemory!{uuid.uuid4().hex[:12]}"

    def queue(self, channel: str) -> asyncio.Queue[tuple[float, dict[str, Any]]]:
        """The channel's queue, made (its name checked) if it has none."""
        queue = self.channels.get(channel)
        if queue is None:
            self.require_valid_channel_name(channel)
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        assert "__asgi_channel__" not in message
        try:
            self.queue(channel).put_nowait((time.time() + self.expiry, copied(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def receive(self, channel: str) -> dict[str, Any]:
        self._clean_expired()
        queue = self.queue(channel)
        self.receiving[channel] += 1
        try:
            _, message = await queue.get()
        finally:
            self.receiving[channel] -= 1
            if not self.receiving[channel]:
                del self.receiving[channel]
        return message

    async def receive_batch(self, channel: str, limit: int) -> list[dict[str, Any]]:
        """The next message of ``channel`` and those waiting behind it, up to ``limit`` in all (a
        worker's messages: one wait for a batch)."""
        batch = [await self.receive(channel)]
        queue = self.channels.get(channel)
        while queue is not None and len(batch) < limit and not queue.empty():
            batch.append(queue.get_nowait()[1])
        return batch

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self.swept_at >= self.EXPIRED_SWEEP_INTERVAL:
            self.swept_at = now
            super()._clean_expired()
            for channel, queue in list(self.channels.items()):
                if queue.empty() and channel not in self.receiving:
                    del self.channels[channel]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        copy = copier(message)
        expires = time.time() + self.expiry
        for channel in list(self.groups.get(group, {})):
            with contextlib.suppress(asyncio.QueueFull):  # a full member misses it, as with Redis
                self.queue(channel).put_nowait((expires, copy()))
