"""Channel layers with less work a message: channels-redis with fewer round trips to Redis, and
Channels' in-memory layer without its per-message costs.

channels-redis sends a message in four round trips (drop expired messages, check the capacity,
add, refresh the expiry), a group message in four more, and receives one in four (restore the
in-flight backup, pop, back it up, clear the backup), every waiting consumer racing for a lock
with two tasks and a wait at every message. :class:`RedisChannelLayer`:

- sends in one Lua script what a process sends meanwhile (up to ``SEND_BATCH`` messages and
  group joins or leaves, in order); a group send reads the group's members in one script, grouped
  by server process there, and sends one message a process with the others;
- has one task a server process read its channel for its consumers, a batch of what waits at a
  time (:mod:`.reads`), into each consumer's buffer.

A worker's channel (``sioless.worker.N``) is durable: :meth:`RedisChannelLayer.take` takes up to
``TAKE_BATCH`` messages in one script and keeps each in flight in Redis until the worker
acknowledges it, and a worker that starts puts back what a dead one had taken
(:mod:`sioless.receipts`).

With several Redis hosts, channels-redis spreads a plain channel's messages over them in turn (so
a worker would take them out of order), and hashes a process channel's full name to send but its
process part to receive: here every channel lives on the one host its process part hashes to.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from .inbox import Inbox
from .reads import ProcessChannelReads
from .scripts import GROUP_MEMBERS_SCRIPT, RESTORE_SCRIPT, SEND_SCRIPT, TAKE_SCRIPT, run_script, run_script_after_wait

logger = logging.getLogger(__name__)

#: Seconds a Redis command waits for a free connection of the pool before it fails.
POOL_WAIT = 20.0
#: Channels whose receiver acknowledges each message once it is in hand (sioless' worker channels).
DURABLE_PREFIX = "sioless.worker."
#: Most messages a worker takes from its durable channel in one round trip.
TAKE_BATCH = 100
#: Most messages (and group joins or leaves) a process sends in one round trip.
SEND_BATCH = 100


#: Seconds before a process whose channel Redis could not be read tries again.
READ_RETRY = 0.5
#: Seconds between the scores of two messages a process sends (they order a channel's messages).
SCORE_STEP = 1e-6


@dataclass
class Outgoing:
    """A message (or a group join or leave) waiting for its round trip: its keys and arguments in
    the send script, and whether it was made (False: its channel was full)."""

    keys: list[str]
    arguments: list[Any]
    sent: asyncio.Future[bool]


class RedisChannelLayer(ChannelsRedisLayer):
    """channels-redis' layer, with one round trip for a batch of messages sent, one for a batch received."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: How this process's channel is read from Redis.
        self.reads = ProcessChannelReads(self.brpop_timeout, int(self.expiry))
        #: The durable channels whose last take took their last message (see :meth:`take`).
        self.emptied: set[str] = set()
        #: By event loop and host: the messages waiting for the next round trip, and its sender.
        self.unsent: dict[tuple[asyncio.AbstractEventLoop, int], list[Outgoing]] = {}
        self.senders: dict[tuple[asyncio.AbstractEventLoop, int], asyncio.Task[None]] = {}
        #: The score of the last message sent: each message's is higher (a channel's order).
        self.last_score = 0.0
        #: The task that reads this process's channel for its consumers, and their inboxes.
        self.reader: asyncio.Task[None] | None = None
        self.receive_buffer: collections.defaultdict[str, Inbox] = collections.defaultdict(
            functools.partial(Inbox, self.capacity)
        )
        self.inboxes_swept_at = time.monotonic()

    def create_pool(self, index: int) -> Any:
        """A pool that waits for a free connection when all ``max_connections`` are busy (redis-py's
        raises "Too many connections": a burst of connects then crashed consumers), and whose
        connections retry a command once, on a new connection, when the one they had was closed
        (after a restart of Redis every pooled connection is: its first command failed, and with it
        the consumer that sent it)."""
        host = dict(self.hosts[index])
        if "address" not in host:
            return super().create_pool(index)  # Sentinel's pool
        host.setdefault("retry_on_error", [RedisConnectionError])
        return BlockingConnectionPool.from_url(host.pop("address"), timeout=POOL_WAIT, **host)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` to ``channel``; raise ChannelFull at the channel's capacity. The
        messages a process sends meanwhile go to Redis in one round trip, in the order sent."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        if "!" in channel:
            message = {**message, "__asgi_channel__": channel}
        durable = channel.startswith(DURABLE_PREFIX)
        if not await self.enqueue(self.non_local_name(channel), message, self.get_capacity(channel), durable):
            raise ChannelFull()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every member of ``group``: one round trip for the members, then one
        message a server process (naming its members there), sent with what this process sends
        meanwhile (channels-redis takes four round trips and hashes every member). A member whose
        channel is full misses it, as with channels-redis."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_group_name(group), "Group name not valid"
        connection = self.connection(self.consistent_hash(group))
        expired = int(time.time()) - self.group_expiry
        grouped = await run_script(connection, GROUP_MEMBERS_SCRIPT, [self._group_key(group)], expired)
        sent = []
        for name, members in zip(map(bytes.decode, grouped[0::2]), map(bytes.decode, grouped[1::2]), strict=True):
            channels = members.split(" ")
            body = {**message, "__asgi_channel__": channels} if name.endswith("!") else message
            sent.append(self.enqueue(name, body, self.get_capacity(channels[0]), durable=False))
        await asyncio.gather(*sent)

    def enqueue(self, name: str, message: dict[str, Any], capacity: int, durable: bool) -> asyncio.Future[bool]:
        """Put a message for the Redis channel ``name`` in the next round trip to its host; whether it
        was sent (False: the channel was full)."""
        self.last_score = max(time.time(), self.last_score + SCORE_STEP)
        key = self.prefix + name
        change = "durable" if durable else "send"
        arguments = [change, self.last_score, self.serialize(message), capacity]
        return self.batched(self.consistent_hash(name), [key, f"{key}$wake"], arguments)

    def batched(self, index: int, keys: list[str], arguments: list[Any]) -> asyncio.Future[bool]:
        """Put a change (its keys and arguments in the send script) in the next round trip to host
        ``index``; whether it was made."""
        loop = asyncio.get_running_loop()
        outgoing = Outgoing(keys, arguments, loop.create_future())
        host = (loop, index)
        self.unsent.setdefault(host, []).append(outgoing)
        if host not in self.senders:
            self.senders[host] = loop.create_task(self.send_unsent(host))
        return outgoing.sent

    async def send_unsent(self, host: tuple[asyncio.AbstractEventLoop, int]) -> None:
        """Send a host's waiting messages and group changes, up to ``SEND_BATCH`` a round trip, one
        round trip at a time (so that Redis gets them in order), until none waits."""
        connection = self.connection(host[1])
        unsent: list[Outgoing] = []
        try:
            while unsent := self.unsent.pop(host, []):
                for start in range(0, len(unsent), SEND_BATCH):
                    await self.send_batch(connection, unsent[start : start + SEND_BATCH])
        finally:
            del self.senders[host]
            for outgoing in [*unsent, *self.unsent.pop(host, [])]:  # cancelled: the loop ends
                if not outgoing.sent.done():
                    outgoing.sent.cancel()

    async def send_batch(self, connection: Any, batch: list[Outgoing]) -> None:
        """Make a batch of changes (messages, group joins and leaves) in one round trip; tell each
        of them whether it was made."""
        keys = [key for outgoing in batch for key in outgoing.keys]
        arguments = [argument for outgoing in batch for argument in outgoing.arguments]
        try:
            times = [time.time(), int(self.expiry), int(self.group_expiry)]
            sent = await run_script(connection, SEND_SCRIPT, keys, *times, *arguments)
        except Exception as exc:
            for outgoing in batch:
                if not outgoing.sent.done():
                    outgoing.sent.set_exception(exc)
            return
        for outgoing, was_sent in zip(batch, sent, strict=True):
            if not outgoing.sent.done():
                outgoing.sent.set_result(bool(was_sent))

    async def group_add(self, group: str, channel: str) -> None:
        await self.group_add_all([group], channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self.group_discard_all([group], channel)

    async def group_add_all(self, groups: list[str], channel: str) -> None:
        """Add ``channel`` to ``groups``, with what this process sends meanwhile (channels-redis
        takes two round trips a group)."""
        await self.change_groups("add", groups, channel)

    async def group_discard_all(self, groups: list[str], channel: str) -> None:
        """Take ``channel`` out of ``groups``, with what this process sends meanwhile."""
        await self.change_groups("discard", groups, channel)

    async def change_groups(self, change: str, groups: list[str], channel: str) -> None:
        """Join or leave (``change``) groups in the next round trips to their hosts."""
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        now = time.time()
        changes = []
        for group in groups:
            assert self.require_valid_group_name(group), "Group name not valid"
            key = self._group_key(group).decode()
            changes.append(self.batched(self.consistent_hash(group), [key, key], [change, now, channel, 0]))
        await asyncio.gather(*changes)

    async def take(self, channel: str) -> list[tuple[dict[str, Any], bytes]]:
        """The next messages of a durable channel (up to ``TAKE_BATCH``), each with its receipt:
        a message stays in flight in Redis until :meth:`acknowledge` gets its receipt, so a
        receiver that dies with it in hand loses nothing (:meth:`restore` puts it back). Waits
        for one: after a take that emptied the channel, the next take waits in Redis for the next
        message sent, in the same round trip (one round trip an event when the worker keeps up)."""
        assert channel.startswith(DURABLE_PREFIX), "not a durable channel"
        connection = self.connection(self.consistent_hash(channel))
        key = self.prefix + channel
        keys = [key, f"{key}$taken", f"{key}$wake"]
        while True:
            if channel in self.emptied:
                taken = await run_script_after_wait(
                    connection, keys[2], self.brpop_timeout, TAKE_SCRIPT, keys, TAKE_BATCH
                )
            else:
                taken = await run_script(connection, TAKE_SCRIPT, keys, TAKE_BATCH)
            if len(taken) // 2 < TAKE_BATCH:
                self.emptied.add(channel)
            else:
                self.emptied.discard(channel)
            if taken:
                return [(self.deserialize(member), member) for member in taken[0::2]]

    async def acknowledge(self, channel: str, receipts: list[bytes]) -> None:
        """The messages of these receipts are in hand for good: they will not be restored."""
        key = self.prefix + channel
        await self.connection(self.consistent_hash(channel)).zrem(f"{key}$taken", *receipts)

    async def restore(self, channel: str) -> int:
        """Put back the messages of a durable channel taken and not acknowledged (their receiver
        died); how many."""
        key = self.prefix + channel
        keys = [key, f"{key}$taken"]
        self.emptied.discard(channel)  # what it puts back wakes no one: the next take looks first
        return int(await run_script(self.connection(self.consistent_hash(channel)), RESTORE_SCRIPT, keys))

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message of ``channel``. A process channel's consumers wait on their buffers,
        filled from Redis by one task of the process, started with its first receive (channels-redis
        has each waiting receive race for a lock with two tasks and a wait, at every message)."""
        if "!" not in channel:
            return await super().receive(channel)
        inbox = self.receive_buffer.get(channel)
        if inbox is None:  # its name checked once, not at every message
            assert self.require_valid_channel_name(channel), "Channel name not valid"
            inbox = self.receive_buffer[channel]
        loop = asyncio.get_running_loop()
        if self.reader is None or self.reader.done() or self.reader.get_loop() is not loop:
            self.reader = loop.create_task(self.read(self.non_local_name(channel)))
        try:
            return await inbox.get()
        except asyncio.CancelledError:
            if not inbox.messages:  # its consumer ended
                self.receive_buffer.pop(channel, None)
            raise

    async def close_pools(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            self.reader = None
        await super().close_pools()

    async def read(self, process_channel: str) -> None:
        """Put the messages of this process's channel in their consumers' buffers, until the pools
        close; Redis unreachable, try again every ``READ_RETRY`` seconds."""
        while True:
            try:
                targets, message = await self.receive_single(process_channel)
            except Exception as exc:
                logger.warning("sioless cannot receive from Redis (%s): trying again", exc)
                await asyncio.sleep(READ_RETRY)
                continue
            self.to_inboxes(targets, message)
            self.drop_forgotten_inboxes()

    def to_inboxes(self, targets: str | list[str], message: dict[str, Any]) -> None:
        """Put a received message in the inbox of each consumer it is for (a channel, or several)."""
        for target in targets if isinstance(targets, list) else [targets]:
            self.receive_buffer[target].put(message)

    def drop_forgotten_inboxes(self) -> None:
        """Drop the inboxes that no receive waited on and no message reached for the layer's expiry,
        at most once an expiry: those of consumers that ended as messages for them came (the
        broadcasts to a room the connection was still in) would be held for the process's life."""
        now = time.monotonic()
        if now - self.inboxes_swept_at < self.expiry:
            return
        self.inboxes_swept_at = now
        for channel in [name for name, inbox in self.receive_buffer.items() if inbox.forgotten(now, self.expiry)]:
            del self.receive_buffer[channel]

    async def receive_single(self, channel: str) -> tuple[Any, dict[str, Any]]:
        """The next message of a server process's channel (``...!``), taking every waiting one
        into the consumers' buffers at once; plain channels as channels-redis receives them, but
        from the one host their name hashes to, as they are sent (channels-redis spreads a plain
        channel's messages over its hosts in turn, which mixes up their order)."""
        if not channel.endswith("!"):
            # channels-redis picks the host with next() before its first await: no other receive
            # can come between
            self._receive_index_generator = itertools.repeat(self.consistent_hash(channel))
            return await super().receive_single(channel)
        connection = self.connection(self.consistent_hash(channel))
        key = self.prefix + channel
        while True:
            batch = await self.reads.next_batch(connection, key)
            if batch:
                # channels-redis' receive() buffers the message returned: the others go first
                *earlier, last = [self.addressed(member) for member in batch]
                for targets, message in earlier:
                    self.to_inboxes(targets, message)
                return last

    async def ping(self) -> None:
        """Raise unless every Redis host of the layer answers."""
        for index in range(self.ring_size):
            await self.connection(index).ping()

    async def mark(self, name: str, value: int = 1) -> tuple[bool, int]:
        """Set the marker key ``name`` (on the first host) to ``value`` unless it is set; whether it
        was missing (Redis lost its data since it was set: a restart, a flush, a failover to a
        replica behind), and the value it holds."""
        connection = self.connection(0)
        key = f"{self.prefix}:marker:{name}"
        if await connection.set(key, value, nx=True):
            return True, value
        return False, int(await connection.get(key) or 0)

    def addressed(self, member: bytes) -> tuple[Any, dict[str, Any]]:
        """A received message, and the channel (or channels) it is for."""
        message = self.deserialize(member)
        return message.pop("__asgi_channel__"), message
