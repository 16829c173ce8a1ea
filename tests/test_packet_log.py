"""The packet logs of connection state recovery: development's, in memory, and Redis streams."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer
from pytest_django.fixtures import Settings

from sioless import recovery
from sioless.layers import RedisChannelLayer
from sioless.recovery import MemoryPacketLog, PacketLog, RedisPacketLog

ROOM, OTHER, SKIPPED = "room-group", "other-group", "skipped-group"
BINARY = '51-["c",{"_placeholder":true,"num":0}]'


@pytest.fixture(params=["memory", "redis"])
def log(request: pytest.FixtureRequest, settings: Settings) -> PacketLog:
    settings.SIOLESS = {
        "CONNECTION_STATE_RECOVERY": True,
        "MAX_DISCONNECTION_DURATION": 0.6,
        "PING_INTERVAL": 0.1,
        "PING_TIMEOUT": 0.1,
    }  # the log keeps events 1 s
    if request.param == "memory":
        return MemoryPacketLog()
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)
    layer.prefix = f"siotest-log-{uuid.uuid4().hex[:8]}"  # a log of this test's own
    return RedisPacketLog(layer)


async def test_a_socket_misses_what_reached_its_groups_after_its_offset_in_order(log: PacketLog) -> None:
    first = await log.append("/", ['2["a"]'], [ROOM], [])
    await log.append("/", ['2["b"]'], [ROOM], [])
    await log.append("/", ['2["elsewhere"]'], [OTHER], [])
    await log.append("/chat", ['2/chat,["other namespace"]'], [ROOM], [])
    await log.append("/", ['2["skipped"]'], [ROOM], [SKIPPED])
    last = await log.append("/", [BINARY, b"\x01"], [OTHER, ROOM], [])
    found = await log.missed("/", first, {ROOM: 0, SKIPPED: 0})
    assert found is not None
    assert [entry.frames[0] for entry in found[0]] == ['2["b"]', BINARY]
    found = await log.missed("/", first, {ROOM: 0})
    assert found is not None
    missed, read_up_to = found
    assert [entry.sent_frames() for entry in missed] == [
        [f'2["b","{missed[0].offset}"]'],
        [f'2["skipped","{missed[1].offset}"]'],
        [f'{BINARY[:-1]},"{last}"]', b"\x01"],
    ]
    assert recovery.offset_key(first) < recovery.offset_key(missed[0].offset) < recovery.offset_key(last)
    assert read_up_to == last


async def test_a_socket_misses_a_group_s_events_only_from_when_it_came_in(log: PacketLog) -> None:
    first = await log.append("/", ['2["before"]'], [ROOM], [])
    await asyncio.sleep(0.01)
    joined = recovery.offset_key(await log.append("/", ['2["skipped before"]'], [ROOM], [SKIPPED]))[0] + 1
    await asyncio.sleep(0.01)
    await log.append("/", ['2["since"]'], [ROOM], [])
    await log.append("/", ['2["skipped since"]'], [ROOM], [SKIPPED])
    found = await log.missed("/", first, {ROOM: joined, SKIPPED: 0})
    assert found is not None
    assert [entry.frames for entry in found[0]] == [['2["since"]']]
    found = await log.missed("/", first, {ROOM: 0, SKIPPED: joined})  # not in SKIPPED when it was skipped
    assert found is not None
    assert [entry.frames for entry in found[0]] == [['2["skipped before"]'], ['2["since"]']]


async def test_a_made_up_offset_recovers_nothing(log: PacketLog) -> None:
    kept = await log.append("/", ['2["old"]'], [ROOM], [])
    assert await log.knows("/", kept)
    newer = recovery.offset_key(kept)[0] + 5
    for made_up in (f"{kept}9", f"{newer}-0", "999999999999999-0", "not-an-offset", "1-2-3", ""):
        assert not await log.recovers("/", made_up)


async def test_an_offset_older_than_the_log_recovers_all_it_holds(log: PacketLog) -> None:
    """A socket that got nothing for longer than the log keeps events (a quiet namespace) missed
    nothing of what was trimmed: it was all sent before its connection was lost."""
    old = await log.append("/", ['2["old"]'], [ROOM], [])
    await asyncio.sleep(recovery.kept_for() + 0.2)
    await log.append("/", ['2["new"]'], [ROOM], [])  # trims what is older than the log keeps
    await log.append("/", ['2["elsewhere"]'], [OTHER], [])
    assert await log.recovers("/", old)
    found = await log.missed("/", old, {ROOM: 0})
    assert found is not None
    assert [entry.frames for entry in found[0]] == [['2["new"]']]


async def test_development_recovers_an_offset_of_the_server_process_before_it() -> None:
    before = MemoryPacketLog()
    offset = await before.append("/", ['2["before the restart"]'], [ROOM], [])
    await asyncio.sleep(0.01)
    after = MemoryPacketLog()  # started later
    await after.append("/", ['2["since"]'], [ROOM], [])
    assert await after.recovers("/", offset)
    found = await after.missed("/", offset, {ROOM: 0})
    assert found is not None
    assert [entry.frames for entry in found[0]] == [['2["since"]']]


async def test_a_socket_that_missed_too_much_starts_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    log = MemoryPacketLog()
    monkeypatch.setattr(recovery, "MAX_MISSED", 3)
    offset = await log.append("/", ['2["a"]'], [ROOM], [])
    for _ in range(4):
        await log.append("/", ['2["b"]'], [ROOM], [])
    assert await log.missed("/", offset, {ROOM: 0}) is None
