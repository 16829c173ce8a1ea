"""The in-memory channel layer of development (one process), lean at every message."""

from __future__ import annotations

import time
import uuid
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryLayer

from .copying import copied, copier
from .inbox import Waited


class Channel(Waited[tuple[float, dict[str, Any]]]):
    """One channel's messages, each with when it expires, at most ``capacity`` of them (the stock
    layer's ``asyncio.Queue`` costs ~3 KiB a channel, and every connection has a channel)."""

    __slots__ = ("capacity",)

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def put(self, expires: float, message: dict[str, Any]) -> bool:
        """Hand a message to the receive waiting, or keep it for the next one; False: the channel
        is full (the message is not kept)."""
        if self.hand_over((expires, message)):
            return True
        if len(self.messages) >= self.capacity:
            return False
        self.messages.append((expires, message))
        return True

    async def get(self) -> dict[str, Any]:
        """The next message."""
        return (await self.next())[1]

    def take_waiting(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` of the messages waiting, taken."""
        taken, self.messages = self.messages[:limit], self.messages[limit:]
        return [message for _, message in taken]

    def drop_expired(self, now: float) -> bool:
        """Drop the messages expired at ``now``; whether there were any (the first to come expires
        first: a channel whose first has not is left as it is)."""
        if not self.messages or self.messages[0][0] >= now:
            return False
        fresh = [(expires, message) for expires, message in self.messages if expires >= now]
        dropped = len(fresh) < len(self.messages)
        self.messages = fresh
        return dropped


class InMemoryChannelLayer(ChannelsInMemoryLayer):
    """Channels' in-memory layer (development: one process), minus the costs it pays at every
    message or that grow with the connections: it sweeps expired messages and memberships at most
    once a second instead of at every message, keeps a channel until a sweep finds it empty and
    unwatched instead of making it again (and checking the channel's name) at every message, holds
    a channel's messages in a :class:`Channel` (not an ``asyncio.Queue``), copies messages without
    ``copy.deepcopy``, and a group send puts a copy in each member's channel in turn (the
    message's dict alone when nothing in it can change) instead of starting a task and a deep copy
    per member. Its channels name their process uniquely, for the heartbeat."""

    #: Seconds between two sweeps of expired messages, group memberships and unused channels.
    EXPIRED_SWEEP_INTERVAL = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.swept_at = 0.0
        self.process = f"p{uuid.uuid4().hex[:12]}"
        self.channels: dict[str, Channel] = {}

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A channel of this process, named after it: a restarted server is never taken for the one before."""
        return f"{prefix}{self.process}.inmemory!{uuid.uuid4().hex[:12]}"

    def channel(self, name: str) -> Channel:
        """The channel named ``name``, made (its name checked) if there is none."""
        channel = self.channels.get(name)
        if channel is None:
            self.require_valid_channel_name(name)
            channel = self.channels[name] = Channel(self.get_capacity(name))
        return channel

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        assert "__asgi_channel__" not in message
        if not self.channel(channel).put(time.time() + self.expiry, copied(message)):
            raise ChannelFull(channel)

    async def receive(self, channel: str) -> dict[str, Any]:
        self._clean_expired()
        return await self.channel(channel).get()

    async def receive_batch(self, channel: str, limit: int) -> list[dict[str, Any]]:
        """The next message of ``channel`` and those waiting behind it, up to ``limit`` in all (a
        worker's messages: one wait for a batch)."""
        first = await self.receive(channel)
        return [first, *self.channel(channel).take_waiting(limit - 1)]

    def _clean_expired(self) -> None:
        """At most once an ``EXPIRED_SWEEP_INTERVAL``: drop expired messages (their channel leaves
        its groups, as with the stock layer), channels empty and unwatched, expired memberships."""
        now = time.monotonic()
        if now - self.swept_at < self.EXPIRED_SWEEP_INTERVAL:
            return
        self.swept_at = now
        wall = time.time()
        for name, channel in list(self.channels.items()):
            if channel.drop_expired(wall):
                self._remove_from_groups(name)
            if not channel.messages and channel.waiter is None:
                del self.channels[name]
        joined_before = int(wall) - self.group_expiry
        for members in self.groups.values():
            for name, joined in list(members.items()):
                if joined and joined < joined_before:
                    del members[name]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        copy = copier(message)
        expires = time.time() + self.expiry
        for name in list(self.groups.get(group, {})):
            self.channel(name).put(expires, copy())  # a full member misses it, as with Redis
