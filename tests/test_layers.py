"""sioless' channel layers: channels-redis (against the real Redis) with fewer round trips, and the
in-memory layer with less work a message, both with the same guarantees."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from channels.exceptions import ChannelFull

from sioless.layers import RECEIVE_SCRIPT, InMemoryChannelLayer, RedisChannelLayer

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
