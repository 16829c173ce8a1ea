"""One client can never hurt another: attacks on the shared way to the worker, against bystanders.

Each attack runs while 20 python-socketio clients chat with acks (a sync handler each); asserted:
no bystander is disconnected, every ack arrives, the bystanders' ack latency stays under a bound
(measured p99s go to tests/artifacts/isolation.json), the attacker alone is closed, and nothing of
its session is left in the database or in Redis afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import socketio

from tests.settings import LAYER_PREFIX
from tests.support.clients import Poller, RawEngine, Recorder, gone, sio_client, watcher
from tests.support.database import topology_sql
from tests.support.processes import ARTIFACTS, daphne, django_env, runserver
from tests.support.topologies import Topology
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

POLICY_VIOLATION = 4008
ABNORMAL_CLOSURE = 1006
BYSTANDERS = 20
#: Frames a flooding WebSocket sends without waiting: 2.5 times MAX_BUFFERED (1 MB) at 84 bytes each.
FLOOD_FRAMES = 30_000
#: The most a bystander's ack may take during a flood (README "Limits and flow control").
FLOOD_LATENCY_BOUND = 3.0
FLOOD = '42["echo_sync",1]'
ATTACKER_ENDS = ("transport error", "transport close")


@pytest.fixture(params=["production", "development"])
def topology(request: pytest.FixtureRequest) -> Topology:
    return request.getfixturevalue(request.param)


@dataclass
class Bystanders:
    """Clients that chat with acks until told to stop, timing every round trip."""

    clients: list[socketio.AsyncClient]
    latencies: list[float] = field(default_factory=list)
    disconnects: list[Any] = field(default_factory=list)

    async def chat(self, seconds: float) -> list[float]:
        """Every client calls ``echo_sync`` in a loop for ``seconds``; the round trips of this run."""
        start = len(self.latencies)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(self.talk(client, deadline) for client in self.clients))
        return self.latencies[start:]

    async def talk(self, client: socketio.AsyncClient, deadline: float) -> None:
        n = 0
        while time.monotonic() < deadline:
            sent = time.monotonic()
            assert await client.call("echo_sync", n, timeout=30) == n
            self.latencies.append(time.monotonic() - sent)
            n += 1
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def bystanders(topology: Topology) -> AsyncIterator[Bystanders]:
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(sio_client(topology.urls[n % len(topology.urls)]))
            for n in range(BYSTANDERS)
        ]
        crowd = Bystanders(clients)
        for client in clients:
            client.on("disconnect", lambda *reason: crowd.disconnects.append(reason))
        yield crowd
        assert crowd.disconnects == []


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]


def record(case: str, quiet: list[float], flooded: list[float]) -> None:
    """Keep the measured latencies for the README."""
    path = ARTIFACTS / "isolation.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[case] = {
        "bystander acks": len(flooded),
        "p50 ms quiet": round(statistics.median(quiet) * 1000, 1),
        "p99 ms quiet": round(p99(quiet) * 1000, 1),
        "p50 ms flooded": round(statistics.median(flooded) * 1000, 1),
        "p99 ms flooded": round(p99(flooded) * 1000, 1),
        "max ms flooded": round(max(flooded) * 1000, 1),
    }
    path.write_text(json.dumps(results, indent=2))


async def under_attack(topology: Topology, case: str, attack: Callable[[], Awaitable[str]], watching: Recorder) -> None:
    """Run ``attack`` (it returns the attacker's Engine.IO sid) while the bystanders chat; check
    that they were unharmed and that nothing of the attacker's session is left."""
    async with bystanders(topology) as crowd:
        quiet = await crowd.chat(2.0)
        chatting = asyncio.ensure_future(crowd.chat(8.0))
        eio_sid = await attack()
        flooded = await chatting
        record(case, quiet, flooded)
        assert max(flooded) < FLOOD_LATENCY_BOUND, (p99(flooded), max(flooded))
        await wait_until(lambda: not session_rows(topology, eio_sid), 30)
    # the attacker's session ended once: past its bound ("transport error"), or when it went
    await watching.next_where("gone", lambda event: event["reason"] in ATTACKER_ENDS, timeout=10)
    if topology.database:
        assert not redis_members_of(eio_sid, topology)


def session_rows(topology: Topology, eio_sid: str) -> list[tuple[Any, ...]]:
    quoted = eio_sid.replace("'", "''")
    return topology_sql(topology, f"SELECT reply_channel FROM sioless_enginesession WHERE sid = '{quoted}'")


_reply_channels: dict[str, str] = {}


def redis_members_of(eio_sid: str, topology: Topology) -> list[str]:
    """The channel-layer groups that still hold the consumer of ``eio_sid``."""
    reply = _reply_channels[eio_sid]
    client = redis.Redis(host="127.0.0.1", port=6379)
    return [
        key.decode() for key in client.scan_iter(f"{LAYER_PREFIX}:group:*") if client.zscore(key, reply) is not None
    ]


async def connected_raw(url: str, topology: Topology) -> tuple[RawEngine, str]:
    raw = await RawEngine.open(url)
    await raw.send("40")
    assert str(await raw.receive()).startswith('40{"sid":')
    eio_sid = raw.handshake["sid"]
    await wait_until(lambda: bool(session_rows(topology, eio_sid)), 10)
    _reply_channels[eio_sid] = session_rows(topology, eio_sid)[0][0]
    return raw, eio_sid


async def test_a_flooding_websocket_is_slowed_or_closed_alone(topology: Topology) -> None:
    async def flood() -> str:
        raw, eio_sid = await connected_raw(topology.urls[0], topology)
        try:
            for _ in range(FLOOD_FRAMES):
                await raw.send(FLOOD)
            # Slowed or closed: 4008 once past its bound (or, when the server drops the TCP connection
            # with the flood still unread, an abnormal closure); a worker that kept up only slowed it
            with contextlib.suppress(TimeoutError):
                assert await raw.closed_with(timeout=10) in (POLICY_VIOLATION, ABNORMAL_CLOSURE)
        finally:
            await raw.close()
        return eio_sid

    async with watcher(topology.urls[-1]) as (_, watching):
        await under_attack(topology, f"websocket flood, {topology_name(topology)}", flood, watching)


async def test_a_flooding_polling_client_is_slowed_then_closed_alone(topology: Topology) -> None:
    """One POST as large as MAX_PAYLOAD allows is taken (it only waits); POSTs that keep coming are
    refused with 400 and close the session."""

    async def flood() -> str:
        async with aiohttp.ClientSession() as http:
            poller = Poller(http, topology.urls)
            await poller.open()
            assert await poller.post("40") == (200, "ok")
            await poller.until(1)
            reply = session_rows(topology, poller.sid)
            _reply_channels[poller.sid] = reply[0][0] if reply else ""
            payload = "\x1e".join([FLOOD] * (100_000 // (len(FLOOD) + 1)))
            statuses = [await poller.post(body=payload)]
            assert statuses[0] == (200, "ok")
            while statuses[-1][0] == 200 and len(statuses) < 50:
                statuses.append(await poller.post(body=payload))
            assert statuses[-1][0] == 400, statuses
            return poller.sid

    async with watcher(topology.urls[-1]) as (_, watching):
        await under_attack(topology, f"polling flood, {topology_name(topology)}", flood, watching)


def topology_name(topology: Topology) -> str:
    return "production" if topology.database else "development"


ENDINGS: dict[str, tuple[Callable[[RawEngine], Awaitable[Any]], str]] = {
    "the client closes the WebSocket": (lambda raw: raw.ws.close(), "transport close"),
    "the client sends an Engine.IO close": (lambda raw: raw.send("1"), "transport close"),
    "a malformed packet": (lambda raw: raw.send("9"), "parse error"),
    "a frame over MAX_PAYLOAD": (lambda raw: raw.send(b"x" * 100_001), "transport error"),
}


async def test_every_way_a_connection_ends_tells_its_worker_once(production: Topology) -> None:
    async with watcher(production.urls[1]) as (_, watching):
        ended: dict[str, str] = {}
        for end, reason in ENDINGS.values():
            raw, eio_sid = await connected_raw(production.urls[0], production)
            ended[eio_sid] = reason
            try:
                await end(raw)
            finally:
                await raw.close()
            await wait_until(lambda sid=eio_sid: not session_rows(production, sid), 10)  # type: ignore[misc]
        await asyncio.sleep(1.0)  # a second report, if any, would come by now
        heard = [event["reason"] for event in gone(watching)]
    assert sorted(heard) == sorted(ended.values())


@pytest.fixture
def own_daphne(production: Topology) -> Iterator[tuple[Any, str]]:
    """A third daphne process of the production topology, for a test that stops it."""
    process, url = daphne(f"isolation-daphne-{uuid.uuid4().hex[:6]}", production.env)
    try:
        yield process, url
    finally:
        process.stop()


async def test_a_server_shutdown_closes_its_sessions_at_once(production: Topology, own_daphne: tuple[Any, str]) -> None:
    """SIGTERM of daphne: its sessions end "server shutting down" now, not as ghosts reaped later."""
    process, url = own_daphne
    async with watcher(production.urls[1]) as (_, watching):
        raws = [await connected_raw(url, production) for _ in range(3)]
        try:
            process.popen.send_signal(signal.SIGTERM)
            process.popen.wait(15)
            for _, eio_sid in raws:
                await wait_until(lambda sid=eio_sid: not session_rows(production, sid), 10)  # type: ignore[misc]
        finally:
            for raw, _ in raws:
                await raw.close()
        await asyncio.sleep(1.0)
        # daphne closes the WebSockets ("transport close") before it cancels the consumers
        reasons = [event["reason"] for event in gone(watching)]
        assert len(reasons) == 3 and set(reasons) <= {"server shutting down", "transport close"}, reasons


async def test_restarting_the_development_server_reaps_its_ghosts_and_no_live_connection(tmp_path: Path) -> None:
    """kill -9 of runserver leaves sessions in the database; the next runserver closes them at its
    start (their process is gone), and through many heartbeat ticks reaps no live connection."""
    env = django_env(
        "tests.settings_dev",
        SIOLESS_TEST_SQLITE=str(tmp_path / "db.sqlite3"),
        SIOLESS_TEST_PING_INTERVAL="0.5",
        SIOLESS_TEST_PING_TIMEOUT="2",
    )
    dev = Topology(urls=[], env=env)
    first, url = runserver("isolation-runserver-1", env)
    clients = [socketio.AsyncClient(reconnection=False) for _ in range(3)]
    try:
        for client in clients:
            await client.connect(url, transports=["websocket"], wait_timeout=5)
            await client.call("join", "lobby", timeout=5)
        first.kill(signal.SIGKILL)
        assert len(topology_sql(dev, "SELECT sid FROM sioless_enginesession")) == 3
    finally:
        first.stop()
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)
    second, url = runserver("isolation-runserver-2", env)
    try:
        async with sio_client(url) as live:
            disconnects: list[Any] = []
            live.on("disconnect", lambda *reason: disconnects.append(reason))
            await live.call("join", "lobby", timeout=5)
            await asyncio.sleep(6 * 0.5 + 2)  # ticks: a dead process would be found after two
            assert await live.call("echo", "alive", timeout=5) == "alive"
            assert disconnects == []
            live_sid = live.eio.sid
            assert topology_sql(dev, "SELECT sid FROM sioless_enginesession") == [(live_sid,)]
            assert "reaped 3 sessions" in second.log()
    finally:
        second.stop()
