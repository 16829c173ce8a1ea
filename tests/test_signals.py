"""What a project is told of its sockets by the worker in this process: the Django signals of a
socket's life (async and sync receivers; one that raises is logged and stops nothing), and the
outgoing hooks of a namespace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.dispatch import Signal
from pytest_django.fixtures import Settings

from sioless import signals, sio
from sioless.worker import Worker
from tests.support.inprocess import EngineClient, served
from tests.support.readme import blocks

#: What the receivers heard: (signal, sid, what else came with it).
Heard = list[tuple[str, str, Any]]
SIGNALS = {
    "connected": signals.socket_connected,
    "recovered": signals.socket_recovered,
    "disconnected": signals.socket_disconnected,
    "joined": signals.room_joined,
    "left": signals.room_left,
}


@pytest.fixture
def heard() -> Iterator[Heard]:
    """Every signal of a socket's life, heard by an async receiver (and the disconnect by a sync one too)."""
    told: Heard = []
    receivers: list[tuple[Signal, Any]] = []
    for name, signal in SIGNALS.items():

        async def receive(sender: type, socket: Any, name: str = name, **named: Any) -> None:
            told.append((name, socket.sid, named.get("room", named.get("reason"))))

        signal.connect(receive)
        receivers.append((signal, receive))

    def receive_sync(sender: type, socket: Any, reason: str, **named: Any) -> None:
        told.append(("disconnected (sync)", socket.sid, reason))

    signals.socket_disconnected.connect(receive_sync)
    receivers.append((signals.socket_disconnected, receive_sync))
    yield told
    for signal, receiver in receivers:
        signal.disconnect(receiver)


async def until(heard: Heard, count: int) -> Heard:
    """What was heard, once ``count`` signals were (within 5 s)."""
    for _ in range(100):
        if len(heard) >= count:
            break
        await asyncio.sleep(0.05)
    return heard


async def test_a_sockets_life_is_told_by_signals(in_process_worker: Worker, heard: Heard) -> None:
    client = await EngineClient.open()
    sid = (await client.connect())["sid"]
    assert await client.call("join", "lobby") == [["lobby"]]
    assert await client.call("leave", "lobby", ack_id=2) == [[]]
    assert await client.call("join", "kitchen", ack_id=3) == [["kitchen"]]
    await client.disconnect()
    told = await until(heard, 7)
    assert told[:4] == [
        ("connected", sid, None),
        ("joined", sid, "lobby"),
        ("left", sid, "lobby"),
        ("joined", sid, "kitchen"),
    ]
    assert sorted(told[4:]) == [
        ("disconnected", sid, "transport close"),
        ("disconnected (sync)", sid, "transport close"),
        ("left", sid, "kitchen"),
    ]


async def test_a_receiver_that_raises_is_logged_and_stops_nothing(
    in_process_worker: Worker, heard: Heard, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(sender: type, **named: Any) -> None:
        raise RuntimeError("receiver broke")

    signals.socket_connected.connect(failing)
    try:
        client = await EngineClient.open()
        sid = (await client.connect())["sid"]
        assert await client.call("echo", "still served") == ["still served"]
        await client.disconnect()
    finally:
        signals.socket_connected.disconnect(failing)
    assert ("connected", sid, None) in await until(heard, 3)
    assert "signal receiver" in caplog.text and "receiver broke" in caplog.text


@pytest.fixture
async def recovering_worker(fast_settings: Settings, transactional_db: None) -> AsyncIterator[Worker]:
    fast_settings.SIOLESS = {**fast_settings.SIOLESS, "CONNECTION_STATE_RECOVERY": True}
    async with served() as running:
        yield running


async def test_a_recovered_socket_is_connected_again_and_recovered(recovering_worker: Worker, heard: Heard) -> None:
    lost = await EngineClient.open()
    connected = await lost.connect("/", {"watch": True})
    sender = await EngineClient.open()
    await sender.connect()
    assert await sender.call("broadcast", "watchers", {"n": 1}) == ["sent"]
    offset = str((await lost.receive_json("2"))[2])
    await lost.disconnect()  # suspended: no disconnect
    back = await EngineClient.open()
    await back.send(f'0{{"pid":"{connected["pid"]}","offset":"{offset}"}}')
    assert (await back.receive_json("0"))["sid"] == connected["sid"]
    told = [signal for signal in await until(heard, 5) if signal[1] == connected["sid"]]
    assert told == [
        ("connected", connected["sid"], None),
        ("joined", connected["sid"], "watchers"),
        ("connected", connected["sid"], None),
        ("recovered", connected["sid"], None),
    ]
    for client in (back, sender):
        await client.disconnect()


async def test_outgoing_hooks_are_told_what_a_socket_sends_its_client(in_process_worker: Worker) -> None:
    told: list[tuple[str, str, tuple[Any, ...]]] = []

    def sync_hook(socket: Any, event: str, *args: Any) -> None:
        told.append(("sync", event, args))

    async def async_hook(socket: Any, event: str, *args: Any) -> None:
        told.append(("async", event, args))

    hooks = sio.of("/").outgoing_hooks
    sio.on_any_outgoing(sync_hook)
    sio.on_any_outgoing(namespace="/")(async_hook)
    try:
        client = await EngineClient.open()
        await client.send('0{"greet":true}')
        assert "sid" in await client.receive_json("0")
        assert await client.receive_json("2") == ["welcome", 1]
        assert await client.receive_json("2") == ["welcome", 2]
        await client.disconnect()
        for _ in range(100):
            if len(told) == 4:
                break
            await asyncio.sleep(0.05)
    finally:
        hooks.remove(sync_hook)
        hooks.remove(async_hook)
    assert sorted(told) == [
        ("async", "welcome", (1,)),
        ("async", "welcome", (2,)),
        ("sync", "welcome", (1,)),
        ("sync", "welcome", (2,)),
    ]


async def test_the_readmes_receiver_runs_as_written(
    in_process_worker: Worker, capsys: pytest.CaptureFixture[str]
) -> None:
    (example,) = [block for block in blocks("example") if block.action == "signals"]
    module: dict[str, Any] = {}
    exec(compile(example.code, "docs/reference.md", "exec"), module)
    try:
        client = await EngineClient.open()
        sid = (await client.connect())["sid"]
        await client.disconnect()
        printed = ""
        for _ in range(100):
            printed += capsys.readouterr().out
            if printed:
                break
            await asyncio.sleep(0.05)
        assert printed == f"{sid} went offline: transport close\n"
    finally:
        signals.socket_disconnected.disconnect(module["went_offline"])
