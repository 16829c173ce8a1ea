"""Connection state recovery with the stock Node socket.io-client: a client whose connection is
cut (reset, no close of any kind) comes back as the same socket, through the balancer to the other
daphne process, with what was sent to it meanwhile, once and in order; over polling too, after a
kill -9 of its daphne, across a worker restart; and never with a pid it does not own."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.clients import RawEngine, gone, raw_engine, watcher
from tests.support.processes import (
    NodeClient,
    development_server,
    django_env,
    reference_server,
    round_robin_proxy,
    runserver,
    worker,
)
from tests.support.topologies import Topology, topology_of_its_own

pytestmark = pytest.mark.e2e

RECOVERY = {"SIOLESS_TEST_RECOVERY": "1"}


@pytest.fixture(scope="module")
def recovering(django_db_setup: None) -> Iterator[Topology]:
    """The production topology with recovery on, and a balancer in front of its two daphne
    processes that can cut every connection (``cutter``)."""
    with topology_of_its_own("recovery", **RECOVERY) as topology:
        yield with_cutter(topology)


def with_cutter(topology: Topology) -> Topology:
    """Add a cutting balancer to ``topology`` (its URL: ``topology.balancer``)."""
    cutter, topology.balancer = round_robin_proxy(
        f"{topology.database}-cutter", *topology.urls[:2], module="tests.support.cutting_balancer"
    )
    topology.processes["cutter"] = cutter
    return topology


def cut(topology: Topology) -> None:
    """Reset every connection the cutting balancer carries."""
    topology.processes["cutter"].popen.send_signal(signal.SIGUSR1)


def emit_from_view(url: str, event: str, *args: Any, to: str | None = None) -> None:
    """POST to the test project's emit view on ``url``: an emit from a daphne process."""
    body = json.dumps({"event": event, "args": list(args), "to": to}).encode()
    request = urllib.request.Request(f"{url}/emit/", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response) == {"emitted": True}


def payloads(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Events as (name, first argument)."""
    return [(event["event"], event["args"][0]) for event in events]


def offsets_rise(events: list[dict[str, Any]]) -> bool:
    """Whether the offsets appended to ``events`` are in the log's order."""
    keys = [tuple(int(part) for part in event["args"][-1].split("-")) for event in events]
    return keys == sorted(keys) and len(set(keys)) == len(keys)


def connected_client(topology: Topology, transport: str) -> tuple[NodeClient, str]:
    """A Node client through the cutting balancer, greeted by the connect handler, in room "r",
    with data; and its sid."""
    client = NodeClient(topology.balancer, transport, auth={"greet": True})
    sid = client.next("connect")["id"]
    assert "r" in client.ask("join", "r")[0]
    assert payloads(client.taken("event")) == [("welcome", 1), ("welcome", 2)]  # came before the ack
    client.ask("set_data", "kept", {"x": 1})
    return client, sid


async def lose_and_recover(
    topology: Topology, transport: str, *, lose: Callable[[Topology], None] = cut, restart_worker: bool = False
) -> None:
    """The scenario every test below runs: the client loses its connection (``lose``), events are
    sent to it (from a view, its room from a handler, itself from its worker or, ``restart_worker``,
    from a view while its worker restarts, the whole namespace), it comes back."""
    async with watcher(topology.urls[1]) as (watching, recorder):
        client, sid = connected_client(topology, transport)
        try:
            if not restart_worker:
                assert client.ask("remind_me", 3.0, "from its worker") == ["later"]
            lose(topology)
            assert client.next("disconnect")["reason"] in ("transport close", "transport error")
            emit_from_view(topology.urls[1], "news", "from a view", to=sid)
            await watching.call("broadcast", ("r", "to its room"))
            if restart_worker:
                topology.processes["worker"].stop()
                emit_from_view(topology.urls[1], "reminder", "while its worker is down", to=sid)
                topology.processes["worker"] = worker("recovery-worker-again", topology.env, 0, 1)
            else:
                await asyncio.sleep(3.5)  # the reminder goes out meanwhile
            emit_from_view(topology.urls[1], "news", "to the namespace")
            client.send(op="connect")
            back = client.next("connect", timeout=20)
            assert back["id"] == sid
            assert back["recovered"] is True
            assert back["transport"] == transport
            assert client.ask("get_data") == [{"kept": {"x": 1}}]
            missed = client.taken("event")
            # each once (the reminder's moment against the others depends on the machine's speed),
            # in the order they were logged (the order they were sent in, for each sender)
            assert sorted(payloads(missed)) == [
                ("news", "from a view"),
                ("news", "to its room"),
                ("news", "to the namespace"),
                ("reminder", "while its worker is down" if restart_worker else "from its worker"),
            ]
            assert offsets_rise(missed)
            await watching.call("broadcast", ("r", "after"))  # still in its room
            assert client.next("event")["args"][0] == "after"
            assert client.taken("event") == []  # the connect handler did not greet it again
            assert [g for g in gone(recorder) if g["sid"] == sid] == []  # its disconnect handler did not run
        finally:
            client.close()


async def test_a_cut_websocket_comes_back_as_the_same_socket(recovering: Topology) -> None:
    await lose_and_recover(recovering, "websocket")


async def test_a_cut_polling_session_comes_back_as_the_same_socket(recovering: Topology) -> None:
    await lose_and_recover(recovering, "polling")


async def test_recovery_survives_a_worker_restart_during_the_gap(recovering: Topology) -> None:
    await lose_and_recover(recovering, "websocket", restart_worker=True)


def kill_first_daphne(topology: Topology) -> None:
    """kill -9 the first daphne process, where the client's first connection went."""
    topology.processes["recovery-kill-daphne-a"].kill()


async def test_recovery_survives_a_kill_of_the_daphne_process_it_was_on(django_db_setup: None) -> None:
    """Nothing tells the worker that the connection is gone: the client's new connection has its
    old session handed over (its consumer does not answer), instead of reaped as a departure."""
    with topology_of_its_own("recovery-kill", **RECOVERY) as topology:
        await lose_and_recover(with_cutter(topology), "websocket", lose=kill_first_daphne)


async def connect_raw(raw: RawEngine, auth: dict[str, Any]) -> dict[str, Any]:
    """Connect "/" with ``auth``; the CONNECT packet's data."""
    await raw.send("40" + json.dumps(auth))
    answer = str(await raw.receive(timeout=10))
    assert answer.startswith("40{"), answer
    return dict(json.loads(answer[2:]))


async def test_a_pid_it_does_not_own_recovers_nothing(recovering: Topology) -> None:
    """Another live socket's pid, its sid, a random pid, pids and offsets of the wrong type, size or
    shape: each gets a socket of its own, and the live socket goes on untouched (its consumer
    answers the hand-over's probe)."""
    async with raw_engine(recovering.urls[0]) as owner:
        connected = await connect_raw(owner, {})
        await owner.send(f'42["broadcast","{connected["sid"]}","hello"]')  # news to itself, at an offset
        news = json.loads(str(await owner.receive())[2:])
        assert news[:2] == ["news", "hello"]
        offset = news[2]
        for pid in (connected["pid"], connected["sid"], "made-up-pid"):
            async with raw_engine(recovering.urls[1]) as intruder:
                intruding = await connect_raw(intruder, {"pid": pid, "offset": offset})
                assert intruding["sid"] != connected["sid"]
                assert intruding["pid"] not in (connected["pid"], pid)
        hostile = [
            {"pid": 5, "offset": offset},
            {"pid": connected["pid"], "offset": {"not": "a string"}},
            {"pid": "p" * 10_000, "offset": offset},
            {"pid": connected["pid"], "offset": "9" * 30},
            {"pid": connected["pid"], "offset": "1-0' OR 1=1"},
        ]
        async with raw_engine(recovering.urls[1]) as intruder:
            for auth in hostile:  # each a new socket, on one connection: nothing there closes it
                intruding = await connect_raw(intruder, auth)
                assert intruding["sid"] != connected["sid"]
                await intruder.send("41")
        await owner.send('421["whoami"]')
        assert json.loads(str(await owner.receive())[3:])[0]["sid"] == connected["sid"]


async def test_a_socket_not_recovered_in_time_ends_with_its_real_reason(tmp_path: Any) -> None:
    """Development (runserver, in-memory layer, SQLite), MAX_DISCONNECTION_DURATION 2 s: the lost
    socket's disconnect handler runs once, with "transport close"; the client coming back later
    is a new socket."""
    env = django_env(
        "tests.settings_dev",
        SIOLESS_TEST_SQLITE=str(tmp_path / "db.sqlite3"),
        SIOLESS_TEST_MAX_DISCONNECTION="2",
        **RECOVERY,
    )
    server, url = runserver("recovery-expiry", env)
    topology = Topology(urls=[url, url], processes={"runserver": server}, env=env)
    try:
        with_cutter(topology)
        async with watcher(url) as (_, recorder):
            client, sid = connected_client(topology, "websocket")
            try:
                cut(topology)
                client.next("disconnect")
                departed = await recorder.next_where("gone", lambda left: left["sid"] == sid, timeout=10)
                assert departed["reason"] == "transport close"
                client.send(op="connect")
                back = client.next("connect")
                assert back["id"] != sid
                assert back["recovered"] is False
                await asyncio.sleep(1)
                assert [g for g in gone(recorder) if g["sid"] == sid] == []  # once
            finally:
                client.close()
    finally:
        topology.stop()


async def test_a_restarted_development_server_leaves_no_ghost(tmp_path: Any) -> None:
    """runserver restarts (as autoreload does at every save): the client comes back as the socket
    it was, the only one in its room, without its connect handler run again."""
    env = django_env("tests.settings_dev", SIOLESS_TEST_SQLITE=str(tmp_path / "db.sqlite3"), **RECOVERY)
    server, url = runserver("recovery-restart", env)
    try:
        client, sid = connected_client(Topology(urls=[url], balancer=url), "websocket")
        try:
            server.stop()
            client.next("disconnect")
            server, _ = runserver("recovery-restart-again", env, port=int(url.rsplit(":", 1)[1]))
            started = time.monotonic()
            client.send(op="connect")
            back = client.next("connect")
            reconnected_in = time.monotonic() - started
            assert (back["id"], back["recovered"]) == (sid, True)
            assert client.ask("fetch_room", "r") == [[sid]]
            assert client.taken("event") == []
            assert reconnected_in < 5.0  # no wait for the previous process's lease (10 s)
        finally:
            client.close()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def node_recovering() -> Iterator[str]:
    with reference_server("recovery-node", 25, 20, 45, 10, "recovery") as url:  # Node's defaults
        yield url


@pytest.fixture(scope="module")
def development_recovering(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with development_server("recovery-runserver", tmp_path_factory.mktemp("recovery"), **RECOVERY) as url:
        yield url


@pytest.fixture(params=["node", "development", "production"])
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Node's socket.io server with recovery on, and sioless in both topologies (production: its
    round-robin balancer): which, and its URL."""
    if request.param == "node":
        return "node", str(request.getfixturevalue("node_recovering"))
    if request.param == "development":
        return "sioless", str(request.getfixturevalue("development_recovering"))
    return "sioless", request.getfixturevalue("recovering").urls[2]


async def test_recovery_on_the_wire_as_node_does_it(server: tuple[str, str]) -> None:
    """CONNECT carries a pid; events carry an offset, acks none; a client back with its pid and last
    offset gets its socket and what it missed (Node sends it before CONNECT, sioless after: the
    README says why); a made-up pid gets a new socket."""
    kind, url = server
    async with raw_engine(url) as first:
        connected = await connect_raw(first, {})
        assert sorted(connected) == ["pid", "sid"]
        await first.send('421["remind_me",0,"now"]')
        ack, event = sorted([str(await first.receive()), str(await first.receive())], reverse=True)
        assert ack == '431["later"]'
        reminder = json.loads(event[2:])
        assert reminder[:2] == ["reminder", "now"] and isinstance(reminder[2], str)
        await first.send('422["remind_me",0.3,"missed"]')
        assert await first.receive() == '432["later"]'
    await asyncio.sleep(1)  # the reminder is sent while the client is away
    async with raw_engine(url) as again:
        await again.send("40" + json.dumps({"pid": connected["pid"], "offset": reminder[2]}))
        frames = [str(await again.receive()), str(await again.receive())]
        connect = next(frame for frame in frames if frame.startswith("40"))
        missed = json.loads(next(frame for frame in frames if frame.startswith("42"))[2:])
        assert json.loads(connect[2:]) == connected
        assert missed[:2] == ["reminder", "missed"] and missed[2] != reminder[2]
        assert frames.index(connect) == (1 if kind == "node" else 0)
    async with raw_engine(url) as stranger:
        assert (await connect_raw(stranger, {"pid": "made-up", "offset": reminder[2]}))["sid"] != connected["sid"]
