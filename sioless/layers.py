"""Channel layers with less work a message: channels-redis with fewer round trips to Redis, and
Channels' in-memory layer without its sweep of every channel at every message.

channels-redis sends a message in four round trips (drop expired messages, check the capacity,
add, refresh the expiry), and receives one in four (restore the in-flight backup, pop, back it up,
clear the backup). :class:`RedisChannelLayer` sends in one Lua script, and a server process takes
every message waiting for its consumers (up to ``RECEIVE_BATCH``) in one script too, keeping them
in the in-flight backup until they are handed to the consumers, so a cancelled receive still
loses nothing; nor does one cancelled (its consumer ended) while it waits in Redis for the
process's next message: the wait is shielded, and what it brings is put back first in line.

A worker's channel (``sioless.worker.N``) is durable: :meth:`RedisChannelLayer.take` takes a
message in one script and keeps it in flight in Redis until the worker acknowledges it, and a
worker that starts puts back what a dead one had taken (:mod:`sioless.receipts`).

With several Redis hosts, channels-redis spreads a plain channel's messages over them in turn (so
a worker would take them out of order), and hashes a process channel's full name to send but its
process part to receive: here every channel lives on the one host its process part hashes to.
Everything else, groups included, is channels-redis' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import time
import uuid
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryLayer
from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

#: KEYS: the channel's key, its wake-up list (a durable channel's; else unused); ARGV: the message,
#: now, the expiry, the capacity, whether the channel is durable.
SEND_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, math.floor(tonumber(ARGV[2])) - tonumber(ARGV[3]))
if redis.call('ZCOUNT', KEYS[1], '-inf', '+inf') >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[5] == '1' then
    redis.call('RPUSH', KEYS[2], 1)
    redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1
"""
#: KEYS: a durable channel, its in-flight set, its wake-up list; ARGV: the expiry. Moves the first
#: message into the in-flight set, where it stays until acknowledged; none: clears the wake-ups.
TAKE_SCRIPT = """
local taken = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #taken == 0 then
    redis.call('DEL', KEYS[3])
    return taken
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, 0)
redis.call('ZADD', KEYS[2], taken[2], taken[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return taken
"""
#: KEYS: a durable channel, its in-flight set; ARGV: the expiry. Puts every message taken and not
#: acknowledged back where it was (its score is when it was sent: ahead of the later ones).
RESTORE_SCRIPT = """
local taken = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #taken, 2 do
    redis.call('ZADD', KEYS[1], taken[i + 1], taken[i])
end
redis.call('DEL', KEYS[2])
if #taken > 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return #taken / 2
"""
#: Seconds a Redis command waits for a free connection of the pool before it fails.
POOL_WAIT = 20.0
#: Channels whose receiver acknowledges each message once it is in hand (sioless' worker channels).
DURABLE_PREFIX = "sioless.worker."
#: KEYS: the channel, its in-flight backup, the backup's batch token; ARGV: the batch size, the token
#: of the last batch handed over, a token for this batch, the expiry. The backup is cleared if it
#: holds the batch handed over, else put back into the channel (its receive was cancelled).
RECEIVE_SCRIPT = """
local backed_up = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
    for i = #backed_up, 1, -2 do
        redis.call('ZADD', KEYS[1], backed_up[i], backed_up[i - 1])
    end
end
redis.call('DEL', KEYS[2])
local batch = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
if #batch > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #batch / 2 - 1)
    for i = 1, #batch, 2 do
        redis.call('ZADD', KEYS[2], batch[i + 1], batch[i])
    end
    redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4])
return batch
"""
#: Most messages a server process takes from Redis in one round trip.
RECEIVE_BATCH = 100


@functools.cache
def script_sha(script: str) -> str:
    """The SHA Redis knows a Lua script by."""
    return hashlib.sha1(script.encode()).hexdigest()


async def run_script(connection: Any, script: str, keys: list[str], *arguments: Any) -> Any:
    """Run a Lua script by its SHA; the first time since Redis started, Redis learns it."""
    try:
        return await connection.evalsha(script_sha(script), len(keys), *keys, *arguments)
    except NoScriptError:
        return await connection.eval(script, len(keys), *keys, *arguments)


class RedisChannelLayer(ChannelsRedisLayer):
    """channels-redis' layer, with one round trip a send and one a batch of received messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed_over: dict[str, str] = {}
        #: Messages on their way back to Redis (see :meth:`put_back`), kept from the garbage collector.
        self.putting_back: set[asyncio.Future[Any]] = set()

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
        """Send ``message`` to ``channel``; raise ChannelFull at the channel's capacity."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        channel_non_local_name = channel
        if "!" in channel:
            message = {**message, "__asgi_channel__": channel}
            channel_non_local_name = self.non_local_name(channel)
        connection = self.connection(self.consistent_hash(channel_non_local_name))
        key = self.prefix + channel_non_local_name
        durable = channel.startswith(DURABLE_PREFIX)
        arguments = [self.serialize(message), time.time(), int(self.expiry), self.get_capacity(channel), int(durable)]
        if not await run_script(connection, SEND_SCRIPT, [key, f"{key}$wake"], *arguments):
            raise ChannelFull()

    async def take(self, channel: str) -> tuple[dict[str, Any], bytes]:
        """The next message of a durable channel, and its receipt: the message stays in flight in
        Redis until :meth:`acknowledge` gets the receipt, so a receiver that dies with it in hand
        loses nothing (:meth:`restore` puts it back). Waits for one."""
        assert channel.startswith(DURABLE_PREFIX), "not a durable channel"
        connection = self.connection(self.consistent_hash(channel))
        key = self.prefix + channel
        keys = [key, f"{key}$taken", f"{key}$wake"]
        while True:
            taken = await run_script(connection, TAKE_SCRIPT, keys, int(self.expiry))
            if taken:
                return self.deserialize(taken[0]), taken[0]
            await connection.blpop([keys[2]], timeout=self.brpop_timeout)

    async def acknowledge(self, channel: str, receipts: list[bytes]) -> None:
        """The messages of these receipts are in hand for good: they will not be restored."""
        key = self.prefix + channel
        await self.connection(self.consistent_hash(channel)).zrem(f"{key}$taken", *receipts)

    async def restore(self, channel: str) -> int:
        """Put back the messages of a durable channel taken and not acknowledged (their receiver
        died); how many."""
        key = self.prefix + channel
        keys = [key, f"{key}$taken"]
        return int(
            await run_script(self.connection(self.consistent_hash(channel)), RESTORE_SCRIPT, keys, int(self.expiry))
        )

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
        keys = [key, f"{key}$inflight", f"{key}$inflight-batch"]
        while True:
            token = uuid.uuid4().hex
            arguments = [RECEIVE_BATCH, self.handed_over.get(key, ""), token, int(self.expiry)]
            batch = await run_script(connection, RECEIVE_SCRIPT, keys, *arguments)
            if batch:
                # channels-redis' receive() buffers the message returned: the others go first
                *earlier, last = [self.addressed(member) for member in batch[0::2]]
                for targets, message in earlier:
                    for target in targets if isinstance(targets, list) else [targets]:
                        self.receive_buffer[target].put_nowait(message)
                self.handed_over[key] = token
                return last
            self.handed_over[key] = token
            popping = asyncio.ensure_future(connection.bzpopmin(key, timeout=self.brpop_timeout))
            try:
                popped = await asyncio.shield(popping)
            except asyncio.CancelledError:
                # its consumer ended: what Redis pops for the process now goes back for the next receive
                popping.add_done_callback(functools.partial(self.put_back, connection))
                raise
            if popped is not None:
                return self.addressed(popped[1])

    def put_back(self, connection: Any, popping: asyncio.Future[Any]) -> None:
        """Put a message that a pop whose receive was cancelled took back first in its process's
        channel, where the receive that took over waits for it."""
        if popping.cancelled() or popping.exception() is not None or popping.result() is None:
            return
        key, member, score = popping.result()
        putting_back = asyncio.ensure_future(connection.zadd(key, {member: score}))
        self.putting_back.add(putting_back)
        putting_back.add_done_callback(self.putting_back.discard)

    async def ping(self) -> None:
        """Raise unless every Redis host of the layer answers."""
        for index in range(self.ring_size):
            await self.connection(index).ping()

    async def mark(self, name: str) -> bool:
        """Set the marker key ``name`` (on the first host); whether it was missing: Redis lost its
        data since the marker was set (a restart, a flush, a failover to a replica behind)."""
        return bool(await self.connection(0).set(f"{self.prefix}:marker:{name}", 1, nx=True))

    def addressed(self, member: bytes) -> tuple[Any, dict[str, Any]]:
        """A received message, and the channel (or channels) it is for."""
        message = self.deserialize(member)
        return message.pop("__asgi_channel__"), message


class InMemoryChannelLayer(ChannelsInMemoryLayer):
    """Channels' in-memory layer (development: one process), minus two costs that grow with the
    connections: it sweeps expired messages and memberships at most once a second instead of at
    every message, and a group send puts the message in each member's queue in turn instead of
    starting a task per member. Its channels name their process uniquely, for the heartbeat."""

    #: Seconds between two sweeps of expired messages and group memberships.
    SWEEP_EVERY = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.swept_at = 0.0
        self.process = f"p{uuid.uuid4().hex[:12]}"

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A channel of this process, named after it: a restarted server is never taken for the one before."""
        return f"{prefix}{self.process}.inmemory!{uuid.uuid4().hex[:12]}"

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self.swept_at >= self.SWEEP_EVERY:
            self.swept_at = now
            super()._clean_expired()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, {})):
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)
