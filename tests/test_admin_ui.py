"""The socket.io Admin UI's server side, driven as the UI drives it (its namespace, its events and
commands) through the worker in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.core.checks import Error
from pytest_django.fixtures import Settings

from sioless import sio
from sioless.checks import check_admin_ui
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


async def test_every_worker_reports_its_stats(worker: Worker) -> None:
    ui = await admin_client()
    (stats,) = await next_event(ui, "server_stats")
    assert stats["serverId"] == worker.name and stats["clientsCount"] == 1
    assert stats["namespaces"] == [{"name": ADMIN, "socketsCount": 1}]
    await ui.disconnect()


def test_an_admin_ui_open_to_anyone_is_refused_outside_debug(settings: Settings) -> None:
    sio.instrument(auth=False)
    try:
        settings.DEBUG = False
        assert [message.id for message in check_admin_ui() if isinstance(message, Error)] == ["sioless.E010"]
        settings.DEBUG = True
        assert check_admin_ui() == []
    finally:
        sio.uninstrument()
