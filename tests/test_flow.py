"""The outbox between a connection and its worker, alone, on the in-memory layer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.layers import get_channel_layer
from pytest_django.fixtures import Settings

from sioless import flow, messages
from sioless.flow import Outbox

WORKER = "sioless.worker.0"


@pytest.fixture(autouse=True)
def small_bounds(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "sioless.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5}}}
    settings.SIOLESS = {"MAX_IN_FLIGHT": 4, "MAX_BUFFERED": 10 * (10 + flow.FRAME_OVERHEAD)}
    monkeypatch.setattr(flow, "RETRY_FIRST", 0.01)


def outbox() -> Outbox:
    return Outbox(get_channel_layer(), WORKER, {"eio": "s1", "reply": "r1"})


async def drain() -> list[dict[str, Any]]:
    """Every message waiting in the worker's channel."""
    layer = get_channel_layer()
    taken = []
    while True:
        try:
            taken.append(await asyncio.wait_for(layer.receive(WORKER), 0.05))
        except TimeoutError:
            return taken


async def test_a_connection_has_at_most_max_in_flight_frames_with_its_worker() -> None:
    box = outbox()
    for n in range(7):
        assert await box.frame(f"2[{n}]".ljust(10), 10)
    sent = await drain()
    assert [m["seq"] for m in sent] == [1, 2, 3, 4]
    assert {(m["eio"], m["reply"], m["type"]) for m in sent} == {("s1", "r1", messages.FRAME)}
    await box.credit(2)
    assert [m["seq"] for m in await drain()] == [5, 6]
    await box.credit(1)  # a late, older report changes nothing
    assert await drain() == []


async def test_past_max_buffered_the_connection_is_refused_alone() -> None:
    box, other = outbox(), Outbox(get_channel_layer(), WORKER, {"eio": "s2", "reply": "r2"})
    results = [await box.frame("x" * 10, 10) for _ in range(4 + 10 + 1)]
    assert results == [True] * 14 + [False]
    await drain()
    assert await other.frame("y", 1)
    assert [m["eio"] for m in await drain()] == ["s2"]


async def test_a_full_channel_delays_in_order_and_the_close_always_arrives() -> None:
    box = outbox()
    await box.control({"type": messages.OPEN, "handshake": {}})
    for n in range(4):
        await box.frame(str(n), 1)
    # capacity 5: everything fits; then a bystander's frames meet a full channel
    bystander = Outbox(get_channel_layer(), WORKER, {"eio": "s2", "reply": "r2"})
    for n in range(3):
        assert await bystander.frame(f"b{n}", 2)
    await bystander.finish({"type": messages.CLOSE, "reason": "transport close"})
    taken = await drain()
    await asyncio.sleep(0.2)  # the retries run once there is room again
    taken += await drain()
    theirs = [m.get("frame", m["type"]) for m in taken if m["eio"] == "s2"]
    assert theirs == ["b0", "b1", "b2", messages.CLOSE]


async def test_finishing_drops_held_frames_and_sends_the_close_first() -> None:
    box = outbox()
    for n in range(6):
        await box.frame(str(n), 1)
    await box.finish({"type": messages.CLOSE, "reason": "transport close"})
    assert [m.get("seq", m["type"]) for m in await drain()] == [1, 2, 3, 4, messages.CLOSE]


async def test_a_resync_reports_the_frames_sent_ahead_of_held_ones() -> None:
    box = outbox()
    for n in range(6):
        await box.frame(str(n), 1)
    await box.resync()
    sent = await drain()
    assert [m.get("seq") for m in sent] == [1, 2, 3, 4, None]
    assert sent[-1]["type"] == messages.SYNC and sent[-1]["sent"] == 4
