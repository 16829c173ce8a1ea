"""sioless' channel layers: channels-redis (against the real Redis) with fewer round trips, and the
in-memory layer with less work a message, both with the same guarantees."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
from channels.exceptions import ChannelFull

from sioless.layers import RECEIVE_SCRIPT, SEND_SCRIPT, InMemoryChannelLayer, RedisChannelLayer

CAPACITY = 6
HOSTS = [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": None}]


@pytest.fixture
async def layer() -> AsyncIterator[RedisChannelLayer]:
    layer = RedisChannelLayer(hosts=HOSTS, prefix=f"siotest-layer-{uuid.uuid4().hex[:8]}", capacity=CAPACITY)
    try:
        yield layer
    finally:
        await layer.flush()
        await layer.close_pools()


async def test_a_full_channel_refuses_messages(layer: RedisChannelLayer) -> None:
    for n in range(CAPACITY):
        await layer.send("worker", {"type": "m", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send("worker", {"type": "m", "n": CAPACITY})
    assert [(await layer.receive("worker"))["n"] for _ in range(CAPACITY)] == list(range(CAPACITY))


async def test_a_batch_reaches_each_consumer_in_order(layer: RedisChannelLayer) -> None:
    first, second = await layer.new_channel(), await layer.new_channel()
    for n in range(3):
        await layer.send(first, {"type": "m", "n": n})
        await layer.send(second, {"type": "m", "n": n})
    assert [(await layer.receive(first))["n"] for _ in range(3)] == [0, 1, 2]
    assert [(await layer.receive(second))["n"] for _ in range(3)] == [0, 1, 2]


async def test_a_batch_whose_receive_was_cancelled_is_received_again(layer: RedisChannelLayer) -> None:
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "m", "n": n})
    key = layer.prefix + layer.non_local_name(channel)
    connection = layer.connection(layer.consistent_hash(channel))
    keys = [key, f"{key}$inflight", f"{key}$inflight-batch"]
    # The script ran, but its answer never reached the receive (cancelled): the batch is in flight.
    taken = await connection.eval(RECEIVE_SCRIPT, 3, *keys, 100, "", "lost-batch", 60)
    assert len(taken) == 6
    assert [(await layer.receive(channel))["n"] for _ in range(3)] == [0, 1, 2]


async def test_a_message_popped_as_a_waiting_receive_is_cancelled_is_not_lost(layer: RedisChannelLayer) -> None:
    """A consumer that ends cancels its receive; if that receive was the one waiting on Redis for
    the process (``BZPOPMIN``) when a message for another consumer came, the message is delivered."""
    leaving, staying = await layer.new_channel(), await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(leaving))
    await asyncio.sleep(0.2)  # it holds the process's receive, blocked in Redis
    # Another process sends while this one's loop is busy: Redis answers the blocked pop at once,
    # and the receive is cancelled before it reads the answer.
    key = layer.prefix + layer.non_local_name(staying)
    message = layer.serialize({"type": "m", "n": 1, "__asgi_channel__": staying})
    other_process = redis.Redis(host="127.0.0.1", port=6379)
    other_process.eval(SEND_SCRIPT, 2, key, f"{key}$wake", message, time.time(), 60, CAPACITY, 0)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert (await asyncio.wait_for(layer.receive(staying), 3))["n"] == 1


async def test_the_in_memory_layer_sends_to_every_member_and_skips_full_ones() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    members = [await layer.new_channel() for _ in range(3)]
    for channel in members:
        await layer.group_add("room", channel)
    await layer.send(members[1], {"type": "filler"})
    await layer.group_send("room", {"type": "news"})
    assert [(await layer.receive(channel))["type"] for channel in members] == ["news", "filler", "news"]
    await layer.group_send("room", {"type": "again"})
    assert [(await layer.receive(channel))["type"] for channel in members] == ["again"] * 3
