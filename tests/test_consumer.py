"""The engine consumer alone, with Channels' communicators and the in-memory layer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.layers import get_channel_layer
from channels.sessions import InstanceSessionWrapper
from channels.testing import HttpCommunicator, WebsocketCommunicator
from pytest_django.fixtures import Settings

from sioless import messages
from sioless.consumers import EngineConsumer
from sioless.names import HEARTBEAT_GROUP, worker_channel
from sioless.polling import PollingConsumer
from sioless.transport import PROTOCOL_ERROR

WORKER = worker_channel(0)


@pytest.fixture(autouse=True)
def in_memory(settings: Settings) -> None:
    """No worker: the tests read what the consumer sends to it."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.SIOLESS = {"SHARDS": 1, "EMBEDDED_WORKER": False, "MAX_PAYLOAD": 64, "PING_INTERVAL": 0.1}


@pytest.fixture
async def engine() -> AsyncIterator[tuple[WebsocketCommunicator, dict[str, Any]]]:
    """A connected consumer and the OPEN handshake it sent."""
    communicator = WebsocketCommunicator(EngineConsumer.as_asgi(), "/socket.io/?EIO=4&transport=websocket")
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_from()
    assert first[0] == "0"
    yield communicator, json.loads(first[1:])
    await communicator.disconnect()


@contextlib.asynccontextmanager
async def opened_engine() -> AsyncIterator[WebsocketCommunicator]:
    """A consumer connected with the settings of the test, its OPEN packet taken."""
    communicator = WebsocketCommunicator(EngineConsumer.as_asgi(), "/socket.io/?EIO=4&transport=websocket")
    assert (await communicator.connect())[0]
    await communicator.receive_from()
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def to_worker() -> dict[str, Any]:
    return await get_channel_layer().receive(WORKER)  # type: ignore[no-any-return]


async def test_open_announces_the_session_to_its_worker(engine: tuple[WebsocketCommunicator, dict[str, Any]]) -> None:
    _, handshake = engine
    assert handshake["upgrades"] == []
    assert (handshake["pingInterval"], handshake["pingTimeout"], handshake["maxPayload"]) == (100, 30000, 64)
    opened = await to_worker()
    assert opened["type"] == messages.OPEN
    assert opened["eio"] == handshake["sid"]
    assert opened["handshake"]["query"] == {"EIO": "4", "transport": "websocket"}


async def test_messages_pass_to_the_worker_undecoded(engine: tuple[WebsocketCommunicator, dict[str, Any]]) -> None:
    communicator, _ = engine
    await to_worker()
    await communicator.send_to(text_data='42["not decoded here"')
    await communicator.send_to(bytes_data=b"\x01\x02")
    assert (await to_worker())["frame"] == '2["not decoded here"'
    assert (await to_worker())["frame"] == b"\x01\x02"


async def tick(number: int) -> str:
    """Send heartbeat tick ``number`` to every consumer (once they are half a ping interval old:
    younger ones skip it); the channel their reports go to."""
    await asyncio.sleep(0.06)
    layer = get_channel_layer()
    reporter = await layer.new_channel()
    await layer.group_send(HEARTBEAT_GROUP, {"type": messages.PING, "tick": number, "reporter": reporter})
    return reporter


async def test_a_ping_unanswered_for_ping_timeout_closes_at_the_next_tick(
    engine: tuple[WebsocketCommunicator, dict[str, Any]], settings: Settings
) -> None:
    settings.SIOLESS = {**settings.SIOLESS, "PING_TIMEOUT": 0.2}
    communicator, _ = engine
    await to_worker()
    await tick(1)
    assert await communicator.receive_from() == "2"
    await communicator.send_to(text_data="3")
    await tick(2)
    assert await communicator.receive_from() == "2"
    await tick(3)  # unanswered, but not for PING_TIMEOUT yet: no new ping, no close
    assert await communicator.receive_nothing(0.3)
    await tick(4)
    assert (await communicator.receive_output())["type"] == "websocket.close"
    closed = await to_worker()
    assert (closed["type"], closed["reason"]) == (messages.CLOSE, "ping timeout")


async def test_a_process_reports_each_tick_once(engine: tuple[WebsocketCommunicator, dict[str, Any]]) -> None:
    first, _ = engine
    second = WebsocketCommunicator(EngineConsumer.as_asgi(), "/socket.io/?EIO=4&transport=websocket")
    assert (await second.connect())[0]
    try:
        assert (await second.receive_from()).startswith("0")
        reporter = await tick(1001)
        assert await first.receive_from() == await second.receive_from() == "2"
        layer = get_channel_layer()
        report = await layer.receive(reporter)
        assert (report["type"], report["process"]) == (messages.ALIVE, "specific..inmemory")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(reporter), 0.2)
    finally:
        await second.disconnect()


async def test_groups_are_joined_again_before_they_expire(settings: Settings) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"group_expiry": 1}}
    }
    communicator = WebsocketCommunicator(EngineConsumer.as_asgi(), "/socket.io/?EIO=4&transport=websocket")
    assert (await communicator.connect())[0]
    try:
        await communicator.receive_from()
        opened = await to_worker()
        layer = get_channel_layer()
        await layer.group_add("room", opened["reply"])
        await layer.send(opened["reply"], {"type": messages.GROUPS, "add": ["room"], "discard": []})
        await asyncio.sleep(0.6)
        await tick(2001)  # past half the expiry: the consumer joins its groups again
        assert await communicator.receive_from() == "2"
        await communicator.send_to(text_data="3")
        await asyncio.sleep(0.6)  # the first join has expired by now
        message = {"type": messages.BROADCAST, "frames": ['2["kept"]'], "targets": ["room"], "skip": [], "via": 0}
        await layer.group_send("room", message)
        assert await communicator.receive_from() == '42["kept"]'
    finally:
        await communicator.disconnect()


async def test_commands_reach_only_members_of_their_group_and_each_once(
    engine: tuple[WebsocketCommunicator, dict[str, Any]],
) -> None:
    opened = await to_worker()
    layer = get_channel_layer()
    await layer.send(opened["reply"], {"type": messages.GROUPS, "add": ["member", "other"], "discard": []})
    command = {"type": messages.COMMAND, "op": "join", "namespace": "/", "room": "r"}
    await layer.send(opened["reply"], {**command, "targets": ["left-already"], "via": 0})
    await layer.send(opened["reply"], {**command, "targets": ["member", "other"], "via": 1})  # taken via "member"
    await layer.send(opened["reply"], {**command, "targets": ["member", "other"], "via": 0})
    forwarded = await to_worker()
    assert (forwarded["type"], forwarded["via"]) == (messages.COMMAND, 0)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(to_worker(), 0.3)


async def test_broadcasts_respect_skip_and_reach_a_member_once(
    engine: tuple[WebsocketCommunicator, dict[str, Any]],
) -> None:
    communicator, _ = engine
    opened = await to_worker()
    layer = get_channel_layer()
    await layer.send(opened["reply"], {"type": messages.GROUPS, "add": ["g1", "g2"], "discard": []})
    for via in (0, 1):
        frames = {"type": messages.BROADCAST, "frames": ['2["twice?"]'], "targets": ["g1", "g2"], "skip": []}
        await layer.send(opened["reply"], {**frames, "via": via})
    await layer.send(opened["reply"], {**frames, "frames": ["skipped"], "skip": ["g2"], "via": 0})
    await layer.send(opened["reply"], {"type": messages.FRAMES, "frames": ['2["direct"]', b"\x07"]})
    assert await communicator.receive_from() == '42["twice?"]'
    assert await communicator.receive_from() == '42["direct"]'
    assert (await communicator.receive_output())["bytes"] == b"\x07"


async def test_a_close_from_the_worker_closes_the_websocket(
    engine: tuple[WebsocketCommunicator, dict[str, Any]],
) -> None:
    communicator, _ = engine
    opened = await to_worker()
    await get_channel_layer().send(opened["reply"], {"type": messages.CLOSE, "reason": "parse error"})
    assert await communicator.receive_output() == {"type": "websocket.close", "code": PROTOCOL_ERROR}


async def test_http_requests_are_refused_with_engine_io_codes() -> None:
    communicator = HttpCommunicator(PollingConsumer.as_asgi(), "GET", "/socket.io/?EIO=4&transport=websocket")
    response = await communicator.get_response()
    assert response["status"] == 400
    assert json.loads(response["body"]) == {"code": 0, "message": "Transport unknown"}


async def test_a_consumer_that_crashes_still_tells_its_worker() -> None:
    communicator = WebsocketCommunicator(EngineConsumer.as_asgi(), "/socket.io/?EIO=4&transport=websocket")
    assert (await communicator.connect())[0]
    await communicator.receive_from()
    opened = await to_worker()
    await get_channel_layer().send(opened["reply"], {"type": "no.such.message"})  # its dispatch raises
    closed = await to_worker()
    assert (closed["type"], closed["eio"], closed["reason"]) == (messages.CLOSE, opened["eio"], "transport error")
    with pytest.raises(ValueError, match="No handler"):
        await communicator.wait()


async def test_frames_carry_their_sequence_and_the_window_waits_for_the_worker(settings: Settings) -> None:
    settings.SIOLESS = {**settings.SIOLESS, "MAX_IN_FLIGHT": 2}
    async with opened_engine() as communicator:
        opened = await to_worker()
        for n in range(4):
            await communicator.send_to(text_data=f'42["e",{n}]')
        assert [(await to_worker())["seq"] for _ in range(2)] == [1, 2]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(to_worker(), 0.2)
        await get_channel_layer().send(opened["reply"], {"type": messages.FRAMES, "frames": [], "handled": 2})
        assert [(await to_worker())["frame"] for _ in range(2)] == ['2["e",2]', '2["e",3]']


async def test_a_tick_within_half_a_ping_interval_of_open_is_skipped(settings: Settings) -> None:
    settings.SIOLESS = {**settings.SIOLESS, "PING_INTERVAL": 1.0}
    async with opened_engine() as communicator:
        layer = get_channel_layer()
        tick_message = {"type": messages.PING, "tick": 3001, "reporter": await layer.new_channel()}
        await layer.group_send(HEARTBEAT_GROUP, tick_message)
        assert await communicator.receive_nothing(0.3)
        await asyncio.sleep(0.3)
        await layer.group_send(HEARTBEAT_GROUP, {**tick_message, "tick": 3002})
        assert await communicator.receive_from() == "2"


async def test_broadcasts_wait_for_a_recovery_and_those_sent_again_are_dropped(
    engine: tuple[WebsocketCommunicator, dict[str, Any]],
) -> None:
    """While a socket is recovered, broadcasts of its namespace's log are held; they follow the
    events sent again, less those among them (up to the offset released); others pass."""
    communicator, _ = engine
    opened = await to_worker()
    layer = get_channel_layer()
    await layer.send(opened["reply"], {"type": messages.GROUPS, "add": ["room"], "discard": [], "hold": "log"})
    broadcast = {"type": messages.BROADCAST, "targets": ["room"], "skip": [], "via": 0, "log": "log"}
    for offset in ("5-0", "9-1", "10-0"):
        await layer.send(opened["reply"], {**broadcast, "frames": [f'2["b","{offset}"]'], "offset": offset})
    await layer.send(
        opened["reply"], {**broadcast, "frames": ['2["other log","1-0"]'], "log": "other", "offset": "1-0"}
    )
    assert await communicator.receive_from() == '42["other log","1-0"]'
    missed = ['0{"sid":"s","pid":"p"}', '2["b","5-0"]', '2["b","9-1"]']
    await layer.send(opened["reply"], {"type": messages.FRAMES, "frames": missed, "release": ["log", "9-1"]})
    assert [await communicator.receive_from() for _ in range(4)] == [f"4{frame}" for frame in missed] + [
        '42["b","10-0"]'
    ]
    await layer.send(opened["reply"], {**broadcast, "frames": ['2["b","11-0"]'], "offset": "11-0"})
    assert await communicator.receive_from() == '42["b","11-0"]'  # held no more


async def test_a_refused_recovery_drops_what_was_held_for_it(
    engine: tuple[WebsocketCommunicator, dict[str, Any]],
) -> None:
    """A middleware refuses the socket being recovered: the broadcasts held for it (its rooms'
    since the recovery began) never reach the client."""
    communicator, _ = engine
    opened = await to_worker()
    layer = get_channel_layer()
    await layer.send(opened["reply"], {"type": messages.GROUPS, "add": ["room"], "discard": [], "hold": "log"})
    held = {"type": messages.BROADCAST, "targets": ["room"], "skip": [], "via": 0, "log": "log", "offset": "5-0"}
    await layer.send(opened["reply"], {**held, "frames": ['2["not for a refused client"]']})
    await layer.send(opened["reply"], {"type": messages.FRAMES, "frames": ['4{"message":"no"}'], "drop_held": "log"})
    assert await communicator.receive_from() == '44{"message":"no"}'
    await layer.send(opened["reply"], {**held, "frames": ['2["sent after"]'], "offset": "6-0"})
    assert await communicator.receive_from() == '42["sent after"]'  # held no more, and the one held is gone


async def test_frames_go_past_the_session_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    """Channels' session wrapper reads the session at every send and saves it only with an HTTP
    response: the accept goes through it, the frames past it."""
    through_wrapper: list[str] = []
    wrapped_send = InstanceSessionWrapper.send

    async def counted(wrapper: InstanceSessionWrapper, message: dict[str, Any]) -> None:
        through_wrapper.append(message["type"])
        await wrapped_send(wrapper, message)

    monkeypatch.setattr(InstanceSessionWrapper, "send", counted)
    app = AuthMiddlewareStack(EngineConsumer.as_asgi())
    communicator = WebsocketCommunicator(app, "/socket.io/?EIO=4&transport=websocket")
    assert (await communicator.connect())[0]
    assert (await communicator.receive_from()).startswith("0{")  # OPEN
    assert through_wrapper == ["websocket.accept"]
    await communicator.disconnect()
