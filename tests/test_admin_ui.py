"""The socket.io Admin UI's server side, driven as the UI drives it (its namespace, its events and
commands) through the worker in this process."""

from __future__ import annotations

import os
import socket as sockets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.core.checks import Error
from pytest_django.fixtures import Settings

from sioless import Socket, signals, sio
from sioless.checks import check_admin_ui
from sioless.engine_stats import EventCounts
from sioless.worker import Worker
from tests.support.inprocess import EngineClient, served

ADMIN = "/admin"
CREDENTIALS = {"username": "ops", "password": "correct horse"}


@pytest.fixture
def instrumented() -> Iterator[None]:
    """The Admin UI served to whoever has the credentials (hashed, as Django keeps passwords)."""
    sio.instrument(auth={"username": "ops", "password": make_password(CREDENTIALS["password"])})
    yield
    sio.uninstrument()


@pytest.fixture
async def worker(instrumented: None, fast_settings: Settings, transactional_db: None) -> AsyncIterator[Worker]:
    async with served() as running:
        yield running


@pytest.fixture
async def development_worker(fast_settings: Settings, transactional_db: None) -> AsyncIterator[Worker]:
    """A worker of an Admin UI in development mode, open to anyone."""
    sio.instrument(auth=False, mode="development")
    try:
        async with served() as running:
            yield running
    finally:
        sio.uninstrument()


async def admin_client(auth: dict[str, str] = CREDENTIALS) -> EngineClient:
    """The UI, connected: its config and the sockets there are taken."""
    client = await EngineClient.open()
    await client.connect(ADMIN, auth)
    return client


async def next_event(client: EngineClient, name: str) -> list[Any]:
    """The arguments of the next ``name`` event the UI gets (others on the way are skipped)."""
    while True:
        event = await client.receive_json(f"2{ADMIN},", timeout=5)
        if event[0] == name:
            return list(event[1:])


async def test_the_ui_gets_the_features_and_every_socket(worker: Worker) -> None:
    watched = await EngineClient.open(query="&room=r1")
    sid = (await watched.connect())["sid"]
    ui = await admin_client()
    (config,) = await next_event(ui, "config")
    assert set(config["supportedFeatures"]) >= {"EMIT", "JOIN", "LEAVE", "DISCONNECT"}
    (every,) = await next_event(ui, "all_sockets")
    assert [(socket["id"], socket["nsp"], socket["clientId"]) for socket in every] == [
        (sid, "/", watched.opened["sid"])
    ]
    assert every[0]["handshake"]["query"]["room"] == "r1" and every[0]["rooms"] == [sid]
    for client in (ui, watched):
        await client.disconnect()


async def test_wrong_credentials_are_refused(worker: Worker) -> None:
    ui = await EngineClient.open()
    await ui.send(f'0{ADMIN},{{"username":"ops","password":"guess"}}')
    assert await ui.receive_json(f"4{ADMIN},") == {"message": "authentication failed"}
    await ui.disconnect()


async def test_the_ui_sees_sockets_come_join_and_go_and_disconnects_one(worker: Worker) -> None:
    ui = await admin_client()
    await next_event(ui, "all_sockets")
    watched = await EngineClient.open()
    sid = (await watched.connect())["sid"]
    (connected, _when) = await next_event(ui, "socket_connected")
    assert (connected["id"], connected["nsp"]) == (sid, "/")
    assert await watched.call("join", "lobby") == [["lobby"]]
    assert (await next_event(ui, "room_joined"))[:3] == ["/", "lobby", sid]
    await ui.send(f'2{ADMIN},["_disconnect","/",false,"{sid}"]')  # the UI's "disconnect" button
    assert await watched.receive_json("1") is None  # the client's socket is disconnected
    assert (await next_event(ui, "room_left"))[:3] == ["/", "lobby", sid]
    assert (await next_event(ui, "socket_disconnected"))[:3] == ["/", sid, "server namespace disconnect"]
    for client in (ui, watched):
        await client.disconnect()


async def test_an_upgrade_is_told_as_the_sockets_transport(worker: Worker) -> None:
    ui = await admin_client()
    await next_event(ui, "all_sockets")
    watched = await EngineClient.open()
    sid = (await watched.connect())["sid"]
    await next_event(ui, "socket_connected")
    (socket,) = [conn.sockets["/"] for conn in worker.connections.values() if "/" in conn.sockets]
    await signals.socket_upgraded.asend(Socket, socket=socket, transport="websocket")
    assert await next_event(ui, "socket_updated") == [{"id": sid, "nsp": "/", "transport": "websocket"}]
    for client in (ui, watched):
        await client.disconnect()


async def test_workers_report_their_sockets_and_server_processes_their_clients(worker: Worker) -> None:
    """As the UI adds them up: a worker's sockets by namespace, a server process's clients (Node's
    engine) and what went through them, each process a server of its own."""
    ui = await admin_client()
    engine = f"{sockets.gethostname()}#{os.getpid()}"
    reports: dict[str, dict[str, Any]] = {}
    while set(reports) != {worker.name, engine}:
        (stats,) = await next_event(ui, "server_stats")
        reports[stats["serverId"]] = stats
    assert reports[worker.name]["namespaces"] == [{"name": ADMIN, "socketsCount": 1}]
    assert reports[worker.name]["clientsCount"] == 0
    served_here = reports[engine]
    assert (served_here["clientsCount"], served_here["pollingClientsCount"], served_here["namespaces"]) == (1, 0, [])
    counted = {event["type"]: event["count"] for event in served_here["aggregatedEvents"]}
    assert counted["rawConnection"] == 1 and counted["packetsIn"] >= 1 and counted["bytesOut"] > counted["packetsOut"]
    await ui.disconnect()


async def test_in_development_mode_the_ui_sees_every_event(development_worker: Worker) -> None:
    ui = await admin_client({})
    (config,) = await next_event(ui, "config")
    assert "ALL_EVENTS" in config["supportedFeatures"]
    watched = await EngineClient.open()
    sid = (await watched.connect(auth={"greet": True}))["sid"]
    assert (await next_event(ui, "event_sent"))[:3] == ["/", sid, ["welcome", 1]]
    assert await watched.call("echo", "hi") == ["hi"]
    assert (await next_event(ui, "event_received"))[:3] == ["/", sid, ["echo", "hi"]]
    for client in (ui, watched):
        await client.disconnect()


def test_in_production_mode_the_ui_is_told_no_event(settings: Settings) -> None:
    settings.DEBUG = False  # production mode by default, as Node's follows NODE_ENV
    sio.instrument(auth=False)
    try:
        assert sio.admin_ui is not None and sio.admin_ui.mode == "production"
        assert not signals.event_received.has_listeners(Socket) and not signals.event_sent.has_listeners(Socket)
        assert signals.socket_upgraded.has_listeners(Socket)
    finally:
        sio.uninstrument()
    with pytest.raises(ValueError, match="mode"):
        sio.instrument(auth=False, mode="staging")


def test_an_admin_ui_open_to_anyone_is_refused_outside_debug(settings: Settings) -> None:
    sio.instrument(auth=False)
    try:
        settings.DEBUG = False
        assert [message.id for message in check_admin_ui() if isinstance(message, Error)] == ["sioless.E010"]
        settings.DEBUG = True
        assert check_admin_ui() == []
    finally:
        sio.uninstrument()


def test_engine_events_are_counted_by_second_type_and_reason() -> None:
    counts = EventCounts()
    for _ in range(2):
        counts.add("rawDisconnection", "transport close")
    counts.add("bytesIn", count=10)
    taken = counts.take()
    totals: dict[tuple[str, str | None], int] = {}
    for event in taken:  # one second each, or two when a second began in between
        key = (event["type"], event.get("subType"))
        totals[key] = totals.get(key, 0) + event["count"]
    assert totals == {("bytesIn", None): 10, ("rawDisconnection", "transport close"): 2}
    assert all(event["timestamp"] % 1000 == 0 for event in taken) and counts.take() == []
