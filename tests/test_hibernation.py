"""The socket worker stops, crashes and is replaced while 50 clients keep sending."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import socketio
from django.db import connection

from sioless.names import process_of, shard_of
from sioless.timing import SHARD_SWEEP_INTERVAL, SYNC_GRACE
from tests.support.clients import sio_client
from tests.support.database import sql
from tests.support.disruptions import kill_and_restart, kill_with_standby, rolling_deploy, stop_and_restart
from tests.support.processes import NODE_SCENARIOS, daphne, django_env, worker
from tests.support.topologies import Topology, own_database, topology_of_its_own
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

NODE_CLIENTS = 30
PYTHON_CLIENTS = 20
SENDING_SECONDS = 12.0
SEND_EVERY = 0.25  # 50 clients: 200 events/s, each an ORM write in a sync handler
DISRUPT_AFTER = 3.0


FORGET_EVERYTHING = (
    "from sioless.models import EngineSession, ShardLease; from tests.app.models import Handled; "
    "EngineSession.objects.all().delete(); ShardLease.objects.all().delete(); Handled.objects.all().delete()"
)


@pytest.fixture(scope="session")
def hibernation_database(django_db_setup: None) -> Iterator[str]:
    """A database of its own: the shard leases and sessions of the other tests' servers live elsewhere."""
    with own_database("hib") as name:
        yield name


@pytest.fixture
def hibernating(hibernation_database: str, request: pytest.FixtureRequest) -> Iterator[Topology]:
    """A topology of its own, for tests that stop and kill its worker: daphne x2, one worker for both shards,
    its own database, its own channel-layer keys, nothing left by earlier tests."""
    env = django_env(
        "tests.settings",
        SIOLESS_TEST_DB_NAME=hibernation_database,
        SIOLESS_TEST_LAYER_PREFIX=f"siotest-hib-{uuid.uuid4().hex[:8]}",
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", FORGET_EVERYTHING], env=env, check=True, timeout=60)
    topology = Topology(urls=[], env=env, database=hibernation_database)
    try:
        case = request.node.callspec.id
        topology.processes["worker-a"] = worker(f"hib-{case}-worker-a", env, 0, 1)
        for name in (f"hib-{case}-daphne-a", f"hib-{case}-daphne-b"):
            process, url = daphne(name, env)
            topology.processes[name] = process
            topology.urls.append(url)
        yield topology
    finally:
        topology.stop()


def test_a_worker_says_which_shards_it_serves_or_stands_by_for(production: Topology) -> None:
    """With Django's default logging (a new project's), a worker still prints what it does."""
    env = {**production.env, "SIOLESS_TEST_DEFAULT_LOGGING": "1"}
    standby = worker("standby-with-default-logging", env, 0, standby=True)
    try:
        standby.wait_for_log("stands by for shard 0, served by worker-")
        assert "for shards [0]" in standby.log()
    finally:
        standby.stop()


async def test_a_revived_session_whose_consumer_never_answers_is_closed(django_db_setup: None) -> None:
    """A session whose consumer died without a word (as a crash while Redis was away leaves it),
    in a server process that lives on, so nothing reaps it: the revived worker closes it once its
    consumer has not answered the resync in SYNC_GRACE. A live client's session is kept."""
    with topology_of_its_own("resync") as topology:
        async with sio_client(topology.urls[0]) as client:
            ((live_sid, reply),) = sql(topology.database, "SELECT sid, reply_channel FROM sioless_enginesession")
            ghost = secrets.token_urlsafe(15)
            handshake = json.dumps({"query": {}, "headers": {}, "address": "", "url": "", "issued": 0.0})
            row = (ghost, shard_of(ghost, 2), f"{process_of(reply)}!gone", process_of(reply), handshake)
            insert = (
                "INSERT INTO sioless_enginesession (sid, shard, reply_channel, process, handshake, opened)"
                " VALUES (%s, %s, %s, %s, %s, now())"
            )
            with psycopg.connect(
                host="127.0.0.1", user=connection.settings_dict["USER"], dbname=topology.database
            ) as db:
                db.execute(insert, row)
            topology.processes["worker"].stop(timeout=40)
            topology.processes["worker"] = worker("resync-worker-revived", topology.env, 0, 1)
            bound = SYNC_GRACE + SHARD_SWEEP_INTERVAL + 5
            with contextlib.suppress(TimeoutError):
                await wait_until(lambda: len(sql(topology.database, SESSIONS)) == 1, bound)
            assert sql(topology.database, SESSIONS) == [(live_sid,)]
            assert await client.call("echo", "still here", timeout=5) == "still here"


SESSIONS = "SELECT sid FROM sioless_enginesession"


class PythonClient:
    """A python-socketio client doing what the Node scenario's clients do."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.room = "odd" if index % 2 else "even"
        self.client = socketio.AsyncClient(reconnection=False)
        self.disconnects: list[Any] = []
        self.news: list[Any] = []
        self.sent: list[tuple[int, float]] = []
        self.finishing = False
        self.client.on("disconnect", lambda *reason: self.finishing or self.disconnects.append(reason))
        self.got_news = asyncio.Event()
        self.client.on("news", self.on_news)

    def on_news(self, payload: Any) -> None:
        self.news.append(payload)
        self.got_news.set()

    async def start(self, url: str) -> None:
        await self.client.connect(url, transports=["websocket"], wait_timeout=10)
        self.sid = self.client.get_sid()
        await self.client.call("join", self.room, timeout=30)
        await self.client.call("set_data", ("me", f"py-{self.index}"), timeout=30)

    async def send(self, n: int) -> None:
        if self.client.connected:  # a client that was dropped fails the test on its disconnects
            self.sent.append((n, time.time()))
            await self.client.emit("record", n)

    async def finish(self) -> None:
        if self.room == "even":  # the broadcast sent once the worker is back
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.got_news.wait(), 60)
        self.data = await self.client.call("get_data", timeout=30) if self.client.connected else None
        self.finishing = True
        await self.client.disconnect()


async def run_clients(topology: Topology, disrupt: Callable[[Topology], float]) -> tuple[list[dict[str, Any]], float]:
    """Clients send for SENDING_SECONDS; the worker is disrupted meanwhile. What each saw, and when the
    old worker was gone (``disrupt`` says: starting a standby first takes a while)."""
    node = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_SCENARIOS),
        "hibernate",
        *topology.urls,
        str(NODE_CLIENTS),
        str(SENDING_SECONDS * 1000),
        str(SEND_EVERY * 1000),
        "node",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert node.stdout is not None
    assert json.loads(await asyncio.wait_for(node.stdout.readline(), 60)) == {"ready": True}
    clients = [PythonClient(i) for i in range(PYTHON_CLIENTS)]
    await asyncio.gather(*(c.start(topology.urls[c.index % 2]) for c in clients))

    async def keep_sending() -> None:
        deadline = time.monotonic() + SENDING_SECONDS
        n = 0
        while time.monotonic() < deadline:
            await asyncio.gather(*(c.send(n) for c in clients))
            n += 1
            await asyncio.sleep(SEND_EVERY)

    sending = asyncio.ensure_future(keep_sending())
    await asyncio.sleep(DISRUPT_AFTER)
    disrupted_at = await asyncio.to_thread(disrupt, topology)
    assert await clients[0].client.call("broadcast", ("even", "after the worker came back"), timeout=30) == "sent"
    await sending
    await asyncio.gather(*(c.finish() for c in clients))
    out, err = await asyncio.wait_for(node.communicate(), 90)
    assert node.returncode == 0, err.decode()
    seen_by_node = json.loads(out.decode().strip().splitlines()[-1])
    seen_by_python = [
        {
            "index": c.index,
            "sid": c.sid,
            "room": c.room,
            "disconnects": c.disconnects,
            "news": c.news,
            "sent": c.sent,
            "data": c.data,
        }
        for c in clients
    ]
    return seen_by_node + seen_by_python, disrupted_at


def handled_by(database: str, sid: str) -> list[int]:
    """The events the handlers took for ``sid``, in the order they took them."""
    return [n for (n,) in sql(database, "SELECT n FROM testapp_handled WHERE sid = %s ORDER BY id", (sid,))]


@pytest.mark.parametrize("disrupt", [kill_and_restart, stop_and_restart, rolling_deploy, kill_with_standby])
async def test_clients_stay_connected_and_state_survives(
    hibernating: Topology, hibernation_database: str, disrupt: Callable[[Topology], float]
) -> None:
    seen, disrupted_at = await run_clients(hibernating, disrupt)
    assert len(seen) == NODE_CLIENTS + PYTHON_CLIENTS
    for position, client in enumerate(seen):
        tag = "node" if position < NODE_CLIENTS else "py"
        label = f"{tag} client {client['index']} ({client['sid']})"
        assert client["disconnects"] == [], label
        assert client["data"] == {"me": f"{tag}-{client['index']}"}, label
        expected_news = ["after the worker came back"] if client["room"] == "even" else []
        assert client["news"] == expected_news, label
        handled = handled_by(hibernation_database, client["sid"])
        sent = [n for n, _ in client["sent"]]
        sent_after = [n for n, at in client["sent"] if at >= disrupted_at]
        assert sent_after, label
        if disrupt is rolling_deploy:
            assert handled == sent, f"{label}: a graceful stop handles everything once, in order"
        else:
            # A crash loses the events the dead worker had taken but not yet handled;
            # whatever was sent after it is handled once and in order.
            assert set(handled) <= set(sent), label
            assert [n for n in handled if n >= sent_after[0]] == sent_after, f"{label}: after the kill"
