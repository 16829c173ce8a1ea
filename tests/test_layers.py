"""sioless' channel layers: channels-redis (against the real Redis) with fewer round trips, and the
in-memory layer with less work a message, both with the same guarantees."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from channels.exceptions import ChannelFull
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from sioless.layers import InMemoryChannelLayer, RedisChannelLayer, receive_batch
from sioless.layers.inbox import Inbox
from sioless.layers.redis_layer import Outgoing
from sioless.layers.scripts import RECEIVE_SCRIPT, SEND_SCRIPT

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


async def test_messages_sent_at_once_go_in_one_round_trip_in_order(layer: RedisChannelLayer) -> None:
    """What a process sends meanwhile goes to Redis in one script: each message is told whether its
    channel took it, and every channel gets its messages in the order they were sent."""
    batches = counted_batches(layer)
    sends = [layer.send(channel, {"type": "m", "n": n}) for n in range(CAPACITY + 2) for channel in ("a", "b")]
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert batches == [2 * (CAPACITY + 2)]
    assert results[: 2 * CAPACITY] == [None] * (2 * CAPACITY)
    assert all(isinstance(result, ChannelFull) for result in results[2 * CAPACITY :])
    for channel in ("a", "b"):
        assert [(await layer.receive(channel))["n"] for _ in range(CAPACITY)] == list(range(CAPACITY))


async def test_group_joins_and_leaves_go_with_the_sends_in_order(layer: RedisChannelLayer) -> None:
    """Joins and leaves asked for meanwhile share the sends' round trip (a burst of connections
    joins its groups in a few round trips, not one a connection), made in the order asked."""
    batches = counted_batches(layer)
    staying, leaving = await layer.new_channel(), await layer.new_channel()
    await asyncio.gather(
        layer.group_add_all(["room", "lobby"], staying),
        layer.group_add("room", leaving),
        layer.send("a", {"type": "m"}),
        layer.group_discard("room", leaving),
    )
    assert batches == [5]
    await layer.group_send("room", {"type": "news"})
    assert (await layer.receive(staying))["type"] == "news"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(leaving), 0.3)
    await layer.group_discard_all(["room", "lobby"], staying)
    await layer.group_send("lobby", {"type": "news"})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(staying), 0.3)


def counted_batches(layer: RedisChannelLayer) -> list[int]:
    """The size of each batch the layer sends from now on, as it sends it."""
    batches: list[int] = []
    send_batch = layer.send_batch

    async def counted(connection: object, batch: list[Outgoing]) -> None:
        batches.append(len(batch))
        await send_batch(connection, batch)

    layer.send_batch = counted  # type: ignore[method-assign]
    return batches


async def test_a_worker_channel_keeps_its_messages_however_long_its_worker_is_away() -> None:
    """A plain channel's messages expire (the layer's ``expiry``); a worker's never do, in its
    channel or in flight: a worker away for longer loses nothing sent to it meanwhile."""
    prefix = f"siotest-layer-{uuid.uuid4().hex[:8]}"
    layer = RedisChannelLayer(hosts=HOSTS, prefix=prefix, capacity=CAPACITY, expiry=1)
    try:
        await layer.send("sioless.worker.0", {"type": "m", "n": 0})
        await layer.send("plain", {"type": "m", "n": 0})
        taken = await layer.take("sioless.worker.0")  # in flight, never acknowledged: its worker died
        await layer.send("sioless.worker.0", {"type": "m", "n": 1})
        await asyncio.sleep(2.5)  # past the expiry
        await layer.send("sioless.worker.0", {"type": "m", "n": 2})  # a send drops a plain channel's old ones
        await layer.send("plain", {"type": "m", "n": 1})
        assert await layer.restore("sioless.worker.0") == len(taken) == 1
        assert [message["n"] for message, _ in await layer.take("sioless.worker.0")] == [0, 1, 2]
        assert (await layer.receive("plain"))["n"] == 1  # the plain channel's first message expired
    finally:
        await layer.flush()
        await layer.close_pools()


async def test_a_worker_takes_a_batch_and_what_it_did_not_acknowledge_is_put_back(layer: RedisChannelLayer) -> None:
    for n in range(5):
        await layer.send("sioless.worker.0", {"type": "m", "n": n})
    taken = await layer.take("sioless.worker.0")
    assert [message["n"] for message, _ in taken] == [0, 1, 2, 3, 4]
    await layer.acknowledge("sioless.worker.0", [receipt for _, receipt in taken[:2]])
    assert await layer.restore("sioless.worker.0") == 3
    # at once: what is put back wakes no waiting take up (the layer's wait for a wake-up is 5 s)
    again = await asyncio.wait_for(layer.take("sioless.worker.0"), 1)
    assert [message["n"] for message, _ in again] == [2, 3, 4]


async def test_a_worker_that_keeps_up_takes_each_message_in_one_round_trip(
    layer: RedisChannelLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a take that emptied its channel, the worker's next take waits in Redis for a wake-up
    and takes in the same round trip (not a wait, then a take, nor a take that finds the channel
    empty first)."""
    round_trips: list[list[str]] = []
    execute_command, execute_pipeline = aioredis.Redis.execute_command, Pipeline.execute

    async def command(client: aioredis.Redis, *args: Any, **options: Any) -> Any:
        round_trips.append([args[0]])
        return await execute_command(client, *args, **options)

    async def pipeline(pipe: Pipeline, *args: Any, **options: Any) -> Any:
        round_trips.append([command_args[0] for command_args, _ in pipe.command_stack])
        return await execute_pipeline(pipe, *args, **options)

    monkeypatch.setattr(aioredis.Redis, "execute_command", command)
    monkeypatch.setattr(Pipeline, "execute", pipeline)
    await layer.send("sioless.worker.0", {"type": "m", "n": 0})
    assert [message["n"] for message, _ in await layer.take("sioless.worker.0")] == [0]
    round_trips.clear()
    waiting = asyncio.ensure_future(layer.take("sioless.worker.0"))
    await asyncio.sleep(0.1)  # it waits in Redis
    send_from_another_process(layer, "sioless.worker.0", 1, "durable")
    assert [message["n"] for message, _ in await asyncio.wait_for(waiting, 1)] == [1]
    assert round_trips == [["BLPOP", "EVALSHA"]]
    in_flight = redis.Redis(host="127.0.0.1", port=6379).zcard(f"{layer.prefix}sioless.worker.0$taken")
    assert in_flight == 2  # both taken, neither acknowledged


@pytest.mark.parametrize("pops_batches", [True, False], ids=["Redis 7", "before Redis 7"])
async def test_a_batch_reaches_each_consumer_in_order(layer: RedisChannelLayer, pops_batches: bool) -> None:
    layer.reads.pops_batches = pops_batches
    first, second = await layer.new_channel(), await layer.new_channel()
    for n in range(3):
        await layer.send(first, {"type": "m", "n": n})
        await layer.send(second, {"type": "m", "n": n})
    assert [(await layer.receive(first))["n"] for _ in range(3)] == [0, 1, 2]
    assert [(await layer.receive(second))["n"] for _ in range(3)] == [0, 1, 2]


async def test_a_batch_whose_receive_was_cancelled_is_received_again(layer: RedisChannelLayer) -> None:
    layer.reads.pops_batches = False  # before Redis 7: a receive takes a batch in a script, then waits
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


@pytest.mark.parametrize(
    ("pops_batches", "reads"), [(True, ["BZMPOP"]), (False, ["EVALSHA", "BZPOPMIN"])], ids=["Redis 7", "before Redis 7"]
)
async def test_a_process_reads_a_message_in_one_request_a_wake_up(
    layer: RedisChannelLayer, monkeypatch: pytest.MonkeyPatch, pops_batches: bool, reads: list[str]
) -> None:
    """A server process waiting for its next message in Redis gets it and waits again: one request
    (before Redis 7, a script that finds the channel empty, then the wait)."""
    layer.reads.pops_batches = pops_batches
    commands: list[str] = []
    execute = aioredis.Redis.execute_command

    async def counted(client: aioredis.Redis, *args: Any, **options: Any) -> Any:
        commands.append(args[0])
        return await execute(client, *args, **options)

    monkeypatch.setattr(aioredis.Redis, "execute_command", counted)
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.2)  # the process's reader waits in Redis
    commands.clear()
    send_from_another_process(layer, channel, 1)
    assert (await asyncio.wait_for(receiving, 3))["n"] == 1
    await asyncio.sleep(0.2)  # it waits again
    assert commands == reads


async def test_a_redis_before_7_is_read_by_script(layer: RedisChannelLayer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unknown(*args: Any, **options: Any) -> None:
        raise ResponseError("unknown command 'BZMPOP', with args beginning with: '5' '1'")

    monkeypatch.setattr(aioredis.Redis, "bzmpop", unknown)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "m", "n": 1})
    assert (await asyncio.wait_for(layer.receive(channel), 3))["n"] == 1
    assert layer.reads.pops_batches is False


def send_from_another_process(layer: RedisChannelLayer, channel: str, n: int, change: str = "send") -> None:
    """Send to ``channel`` as another process does (not through ``layer``): ``change`` is "durable"
    for a worker's channel."""
    key = layer.prefix + layer.non_local_name(channel)
    message = layer.serialize({"type": "m", "n": n, "__asgi_channel__": channel})
    other_process = redis.Redis(host="127.0.0.1", port=6379)
    other_process.eval(SEND_SCRIPT, 2, key, f"{key}$wake", time.time(), 60, 60, change, time.time(), message, CAPACITY)


@pytest.mark.parametrize("pops_batches", [True, False], ids=["Redis 7", "before Redis 7"])
async def test_a_message_popped_as_a_waiting_receive_is_cancelled_is_not_lost(
    layer: RedisChannelLayer, pops_batches: bool
) -> None:
    """A consumer that ends cancels its receive; if that receive was the one waiting on Redis for
    the process (``BZMPOP``, ``BZPOPMIN``) when a message for another consumer came, the message is
    delivered."""
    layer.reads.pops_batches = pops_batches
    leaving, staying = await layer.new_channel(), await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(leaving))
    await asyncio.sleep(0.2)  # it holds the process's receive, blocked in Redis
    # Another process sends while this one's loop is busy: Redis answers the blocked pop at once,
    # and the receive is cancelled before it reads the answer.
    send_from_another_process(layer, staying, 1)
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


async def test_the_in_memory_layer_keeps_a_queue_someone_waits_on() -> None:
    """Queues outlive their messages until a sweep; it drops those nobody waits on, not the others
    (a message sent to a dropped queue would never reach the receive waiting on it)."""
    layer = InMemoryChannelLayer()
    layer.EXPIRED_SWEEP_INTERVAL = 0.0
    waiting = asyncio.ensure_future(layer.receive("waited"))
    await asyncio.sleep(0)  # it waits
    await layer.send("idle", {"type": "m"})
    await layer.receive("idle")
    assert "idle" in layer.channels
    layer._clean_expired()
    assert "idle" not in layer.channels and "waited" in layer.channels
    await layer.send("waited", {"type": "m", "n": 1})
    assert (await asyncio.wait_for(waiting, 1))["n"] == 1


async def test_the_in_memory_layer_refuses_a_full_channel_and_keeps_what_a_cancelled_receive_missed() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    await layer.send("c", {"type": "m", "n": 0})
    with pytest.raises(ChannelFull):
        await layer.send("c", {"type": "m", "n": 1})
    assert (await layer.receive("c"))["n"] == 0
    receiving = asyncio.ensure_future(layer.receive("c"))
    await asyncio.sleep(0)  # it waits
    await layer.send("c", {"type": "m", "n": 2})  # its message came...
    receiving.cancel()  # ...and it was cancelled before it ran again
    with pytest.raises(asyncio.CancelledError):
        await receiving
    assert (await asyncio.wait_for(layer.receive("c"), 1))["n"] == 2


async def test_an_expired_message_takes_its_channel_out_of_its_groups() -> None:
    """As with Channels' own layer: a channel whose message expired unread has no reader left."""
    layer = InMemoryChannelLayer(expiry=0)
    layer.EXPIRED_SWEEP_INTERVAL = 0.0
    await layer.group_add("room", "gone")
    await layer.group_add("room", "here")
    await layer.send("gone", {"type": "m"})
    await asyncio.sleep(0.01)
    layer._clean_expired()
    assert list(layer.groups["room"]) == ["here"] and "gone" not in layer.channels


async def test_the_in_memory_layer_delivers_a_copy_of_what_was_sent() -> None:
    """What the sender changes after a send does not reach the receiver (as through Redis)."""
    layer = InMemoryChannelLayer()
    sent = {"type": "m", "frames": ["a"], "nested": {"rooms": ["r"]}, "pair": (["x"], 1)}
    await layer.send("c", sent)
    sent["frames"].append("b")
    sent["nested"]["rooms"].append("s")
    sent["pair"][0].append("y")
    assert await layer.receive("c") == {"type": "m", "frames": ["a"], "nested": {"rooms": ["r"]}, "pair": (["x"], 1)}


async def test_each_member_of_a_group_gets_a_message_of_its_own() -> None:
    """What a member changes in its message no other member sees, nor what the sender changes
    later; values that cannot change (a broadcast's tuples of frames) are shared, not copied."""
    layer = InMemoryChannelLayer()
    for channel in ("a", "b"):
        await layer.group_add("room", channel)
    frozen = {"type": "m", "frames": ("x",), "via": 0}
    await layer.group_send("room", frozen)
    first, second = await layer.receive("a"), await layer.receive("b")
    first["type"] = "changed"
    assert second == {"type": "m", "frames": ("x",), "via": 0} and second["frames"] is frozen["frames"]
    changeable = {"type": "m", "frames": ["x"], "pair": (["y"],)}
    await layer.group_send("room", changeable)
    first, second = await layer.receive("a"), await layer.receive("b")
    first["frames"].append("mine")
    first["pair"][0].append("mine")
    changeable["frames"].append("later")
    assert second == {"type": "m", "frames": ["x"], "pair": (["y"],)}


async def test_a_group_send_reaches_each_member_once_and_skips_a_full_one(layer: RedisChannelLayer) -> None:
    """One message a server process, naming its members; a plain channel gets its own; a member
    whose channel is full misses it, without an error for the others."""
    other_process = RedisChannelLayer(hosts=HOSTS, prefix=layer.prefix, capacity=CAPACITY)
    try:
        here = [await layer.new_channel() for _ in range(2)]
        there = await other_process.new_channel()
        full = "plain-full"
        for channel in [*here, there, full]:
            await layer.group_add("room", channel)
        for n in range(CAPACITY):
            await layer.send(full, {"type": "filler", "n": n})
        await layer.group_send("room", {"type": "news"})
        assert [(await layer.receive(channel))["type"] for channel in here] == ["news", "news"]
        assert (await other_process.receive(there))["type"] == "news"
        assert [(await layer.receive(full))["type"] for _ in range(CAPACITY)] == ["filler"] * CAPACITY
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(here[0]), 0.3)  # once only
    finally:
        await other_process.close_pools()


async def test_an_inbox_keeps_the_newest_messages_up_to_its_capacity() -> None:
    """A consumer that stops reading holds at most ``capacity`` messages (the oldest dropped)."""
    inbox = Inbox(capacity=2)
    for n in range(3):
        inbox.put({"n": n})
    assert [(await inbox.get())["n"] for _ in range(2)] == [1, 2]


async def test_a_receive_cancelled_as_its_message_came_leaves_it_for_the_next() -> None:
    inbox = Inbox(capacity=2)
    receiving = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)  # it waits
    inbox.put({"n": 1})  # its message came...
    receiving.cancel()  # ...and it was cancelled before it ran again
    with pytest.raises(asyncio.CancelledError):
        await receiving
    assert await asyncio.wait_for(inbox.get(), 1) == {"n": 1}


async def test_the_in_memory_layer_hands_a_worker_what_waits_in_one_receive() -> None:
    layer = InMemoryChannelLayer()
    for n in range(3):
        await layer.send("sioless.worker.0", {"type": "m", "n": n})
    assert [m["n"] for m in await receive_batch(layer, "sioless.worker.0", 2)] == [0, 1]
    assert [m["n"] for m in await receive_batch(layer, "sioless.worker.0", 2)] == [2]


async def test_an_inbox_no_one_receives_from_is_dropped_after_the_expiry() -> None:
    """A consumer that ended as a broadcast to its room came: its inbox, and the message, are
    not held for the process's life (the layer's expiry, as for a message left in Redis)."""
    layer = RedisChannelLayer(hosts=HOSTS, prefix=f"siotest-layer-{uuid.uuid4().hex[:8]}", expiry=1)
    try:
        live, ended = await layer.new_channel(), await layer.new_channel()
        await layer.send(ended, {"type": "m"})
        await layer.send(live, {"type": "m"})
        assert (await layer.receive(live))["type"] == "m"  # the ended one's came with it
        assert ended in layer.receive_buffer
        receiving = asyncio.ensure_future(layer.receive(live))
        await asyncio.sleep(1.5)
        await layer.send(live, {"type": "later"})
        assert (await asyncio.wait_for(receiving, 3))["type"] == "later"
        assert ended not in layer.receive_buffer
        assert live in layer.receive_buffer
    finally:
        await layer.flush()
        await layer.close_pools()
