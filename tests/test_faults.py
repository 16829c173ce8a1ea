"""Redis and PostgreSQL faults: the service heals itself, with no process restarted by the test.

The production topology (two daphne behind the balancer, a worker for both shards, a qcluster)
runs on a Redis server and a PostgreSQL cluster of this module's own, on free ports, which the
tests kill, flush and stop by PID: the machine's shared services are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from demo_project.production import free_port
from sioless.layers import RedisChannelLayer
from tests.support.clients import RawEngine, Recorder
from tests.support.processes import ROOT, daphne, django_env, qcluster, round_robin_proxy, run_node, worker
from tests.support.services import PostgresCluster, RedisServer
from tests.support.topologies import Topology, topology_of_its_own
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

PING_INTERVAL = 2.0
PING_TIMEOUT = 15.0
#: How long the database is away: longer than a worker's lease (8 s), shorter than clients' patience.
DATABASE_OUTAGE = 10.0
#: How long clients go without a ping before they give up: any pause of the heartbeat shorter is invisible.
CLIENT_PATIENCE = PING_INTERVAL + PING_TIMEOUT
CLIENTS = 8
#: The channel layer's message expiry here: a worker away longer must lose nothing queued for it.
LAYER_EXPIRY = 4
#: Raw WebSocket clients counting acks on the wire, and the events a second each sends.
ECHOERS = 50
ECHOES_PER_SECOND = 4
#: Seconds within which a session whose client went elsewhere is closed: its pings go unanswered.
GHOSTS_GONE_WITHIN = CLIENT_PATIENCE + 2 * PING_INTERVAL + 5
ROOM = "faults"


@dataclass
class Faulty:
    topology: Topology
    redis: RedisServer
    postgres: PostgresCluster


@pytest.fixture(scope="module")
def faulty() -> Iterator[Faulty]:
    home = Path(tempfile.mkdtemp(prefix="sioless-faults-"))  # not pytest's: the postgres user must reach it
    home.chmod(0o755)
    redis_server = RedisServer()
    postgres = PostgresCluster(home / "pg")
    topology = Topology(urls=[])
    try:
        redis_server.start()
        postgres.create()
        env = django_env(
            "tests.settings",
            SIOLESS_TEST_DB_NAME="faults",
            SIOLESS_TEST_DB_PORT=str(postgres.port),
            SIOLESS_TEST_REDIS_PORT=str(redis_server.port),
            SIOLESS_TEST_LAYER_PREFIX=f"siotest-faults-{uuid.uuid4().hex[:8]}",
            SIOLESS_TEST_PING_INTERVAL=str(PING_INTERVAL),
            SIOLESS_TEST_PING_TIMEOUT=str(PING_TIMEOUT),
            SIOLESS_TEST_LAYER_EXPIRY=str(LAYER_EXPIRY),
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
        topology.env = env
        topology.processes["worker"] = worker("faults-worker", env, 0, 1)
        for name in ("faults-daphne-a", "faults-daphne-b"):
            process, url = daphne(name, env)
            topology.processes[name] = process
            topology.urls.append(url)
        topology.processes["proxy"], topology.balancer = round_robin_proxy("faults-proxy", *topology.urls)
        topology.processes["qcluster"] = qcluster("faults-qcluster", env)
        yield Faulty(topology, redis_server, postgres)
    finally:
        topology.stop()
        with contextlib.suppress(Exception):
            postgres.stop()
        if redis_server.process is not None:
            redis_server.process.stop()
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Crowd:
    """Clients through the balancer (half WebSocket, half polling), all in one room but the last,
    the outsider; they reconnect by themselves as stock clients do, and join the room again."""

    clients: list[socketio.AsyncClient]
    news: list[Recorder]
    disconnects: list[Any] = field(default_factory=list)

    async def broadcast_reaches_all(self, payload: str, timeout: float = 2.0) -> bool:
        """Whether a broadcast to the room reaches exactly its members (each once), not the outsider."""
        *members, outsider = self.news
        await self.clients[0].call("broadcast", (ROOM, payload), timeout=5)
        try:
            for recorder in members:
                await recorder.next_where("news", lambda seen: seen == payload, timeout=timeout)
        except TimeoutError:
            return False
        assert outsider.empty("news"), "a broadcast reached a client outside the room"
        return True

    async def until_broadcasts_reach_all(self, bound: float) -> float:
        """Seconds until broadcasts reach every client again; fails past ``bound``."""
        started = time.monotonic()
        attempt = 0
        while time.monotonic() - started < bound:
            attempt += 1
            with contextlib.suppress(Exception):
                if await self.broadcast_reaches_all(f"attempt {attempt}"):
                    return time.monotonic() - started
            await asyncio.sleep(0.5)
        raise AssertionError(f"broadcasts did not reach every client within {bound} s")


@contextlib.asynccontextmanager
async def crowd(topology: Topology) -> AsyncIterator[Crowd]:
    clients = [socketio.AsyncClient(reconnection=True, reconnection_delay=0.5) for _ in range(CLIENTS)]
    group = Crowd(clients, [Recorder(client, "news") for client in clients])
    for client in clients:
        client.on("disconnect", lambda *reason: group.disconnects.append(reason))
    for client in clients[:-1]:
        client.on("connect", lambda c=client: asyncio.ensure_future(c.emit("join", ROOM)))
    try:
        for n, client in enumerate(clients):
            transports = ["websocket"] if n % 2 else ["polling"]
            await client.connect(topology.balancer, transports=transports, wait_timeout=10)
        await asyncio.sleep(0.5)  # the joins
        assert await group.broadcast_reaches_all("before")
        yield group
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)


def live_sessions(postgres: PostgresCluster) -> int:
    return int(postgres.rows("SELECT count(*) FROM sioless_enginesession")[0][0])


async def test_a_restarted_worker_takes_over_from_its_dead_predecessor_at_once(faulty: Faulty) -> None:
    topology = faulty.topology
    topology.processes["worker"].kill(signal.SIGKILL)
    started = time.monotonic()
    topology.processes["worker"] = worker("faults-worker-after-kill", topology.env, 0, 1)
    assert time.monotonic() - started < 5.0  # not the lease's 10 s
    assert "took shard 0 over" in topology.processes["worker"].log()


async def test_a_killed_worker_loses_no_event_whose_handler_had_not_started(faulty: Faulty) -> None:
    """Events queue in the worker behind a slow sync handler; kill -9 takes them down with it. The
    next worker puts back what its predecessor had taken and not started: every event is handled."""
    topology = faulty.topology
    async with contextlib.AsyncExitStack() as stack:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(topology.urls[0], transports=["websocket"], wait_timeout=10)
        stack.push_async_callback(client.disconnect)
        sid = client.get_sid()
        for n in range(30):
            await client.emit("record_slow", n)
        await asyncio.sleep(0.4)  # a few handled, the others waiting for Django's thread
        topology.processes["worker"].kill(signal.SIGKILL)
        assert len(handled(faulty.postgres, sid)) < 30
        topology.processes["worker"] = worker("faults-worker-after-kill-9", topology.env, 0, 1)
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: set(handled(faulty.postgres, sid)) == set(range(30)), 20)
        assert set(handled(faulty.postgres, sid)) == set(range(30))
        assert "had taken and not started" in topology.processes["worker"].log()


@dataclass
class Echoer:
    """A raw WebSocket client emitting numbered echoes, counting every ack frame on the wire (a
    duplicate is seen, not deduplicated by a client library)."""

    engine: RawEngine
    sent: int = 0
    acks: Counter[int] = field(default_factory=Counter)
    closed: str | None = None

    @classmethod
    async def connect(cls, url: str) -> Echoer:
        engine = await RawEngine.open(url)
        await engine.send("40")
        assert str(await engine.receive()).startswith("40{")
        return cls(engine)

    async def emit(self) -> None:
        self.sent += 1
        await self.engine.send(f'42{self.sent}["echo",{self.sent}]')

    async def read(self) -> None:
        """Count acks until the connection closes (which it must not)."""
        try:
            while True:
                if (ack := ACK.match(str(await self.engine.receive(timeout=3600)))) is not None:
                    self.acks[int(ack[1])] += 1
        except ConnectionError as exc:
            self.closed = str(exc)


ACK = re.compile(r"43(\d+)\[")


@dataclass
class Tally:
    """What the echoers saw: events sent, acked once, never acked, acked more than once."""

    sent: int
    once: int
    lost: int
    twice: int
    closed: int

    @classmethod
    def of(cls, echoers: list[Echoer]) -> Tally:
        acks = [echoer.acks[n] for echoer in echoers for n in range(1, echoer.sent + 1)]
        return cls(
            sent=len(acks),
            once=acks.count(1),
            lost=acks.count(0),
            twice=sum(1 for count in acks if count > 1),
            closed=sum(1 for echoer in echoers if echoer.closed),
        )


@contextlib.asynccontextmanager
async def echoers(topology: Topology) -> AsyncIterator[list[Echoer]]:
    """ECHOERS clients on the daphne processes in turn, reading acks."""
    clients = [await Echoer.connect(topology.urls[n % len(topology.urls)]) for n in range(ECHOERS)]
    readers = [asyncio.ensure_future(client.read()) for client in clients]
    try:
        yield clients
    finally:
        for reader in readers:
            reader.cancel()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.engine.close()


async def emit_for(clients: list[Echoer], seconds: float) -> None:
    """ECHOES_PER_SECOND events a second from every client, for ``seconds``."""
    for _ in range(int(seconds * ECHOES_PER_SECOND)):
        await asyncio.gather(*(client.emit() for client in clients))
        await asyncio.sleep(1 / ECHOES_PER_SECOND)


async def all_acked(clients: list[Echoer], bound: float) -> Tally:
    """The tally once every event is acked, or ``bound`` seconds have passed (then a second more, for
    a duplicate that would follow)."""
    with contextlib.suppress(TimeoutError):
        await wait_until(lambda: Tally.of(clients).lost == 0, bound)
    await asyncio.sleep(1.0)
    return Tally.of(clients)


async def test_a_worker_killed_under_load_sends_every_ack_exactly_once(faulty: Faulty) -> None:
    """kill -9 of the worker while 50 clients send 200 events a second, a new worker started at
    once: handlers that were running run again (at least once), but no client sees an ack twice."""
    topology = faulty.topology
    async with echoers(topology) as clients:
        load = asyncio.ensure_future(emit_for(clients, 8.0))
        await asyncio.sleep(2.0)
        topology.processes["worker"].kill(signal.SIGKILL)
        topology.processes["worker"] = worker("faults-worker-under-load", topology.env, 0, 1)
        await load
        tally = await all_acked(clients, 60.0)
    print(f"kill -9 under load: {tally}")
    assert tally.sent == ECHOERS * 8 * ECHOES_PER_SECOND
    assert (tally.once, tally.lost, tally.twice, tally.closed) == (tally.sent, 0, 0, 0)


async def test_a_worker_away_longer_than_the_layer_s_expiry_loses_nothing_sent_meanwhile(faulty: Faulty) -> None:
    """Events sent while no worker runs wait in the shard's durable channel (which never expires)
    and in the consumers (past MAX_IN_FLIGHT), however long the worker is away: here more than
    twice the channel layer's expiry."""
    topology = faulty.topology
    async with echoers(topology) as clients:
        topology.processes["worker"].kill(signal.SIGKILL)
        await emit_for(clients, 2.5 * LAYER_EXPIRY)  # 40 events a client: past MAX_IN_FLIGHT too
        topology.processes["worker"] = worker("faults-worker-after-absence", topology.env, 0, 1)
        tally = await all_acked(clients, 60.0)
    print(f"worker away {2.5 * LAYER_EXPIRY:.0f} s: {tally}", [c.closed for c in clients if c.closed])
    assert tally.sent == ECHOERS * int(2.5 * LAYER_EXPIRY * ECHOES_PER_SECOND)
    assert (tally.once, tally.lost, tally.twice, tally.closed) == (tally.sent, 0, 0, 0)


def handled(postgres: PostgresCluster, sid: str) -> list[int]:
    return [row[0] for row in postgres.rows(f"SELECT n FROM testapp_handled WHERE sid = '{sid}'")]


async def test_a_flush_of_redis_drops_no_one_and_broadcasts_reach_the_room_again(faulty: Faulty) -> None:
    async with crowd(faulty.topology) as group:
        faulty.redis.client().flushall()
        took = await group.until_broadcasts_reach_all(bound=15.0)
        await asyncio.sleep(CLIENT_PATIENCE + PING_INTERVAL)  # pings go on: no client gives up
        assert group.disconnects == []
        assert await group.broadcast_reaches_all("after")
    print(f"broadcasts reached the room again {took:.1f} s after FLUSHALL")


async def test_a_database_outage_drops_no_one_and_loses_no_acknowledged_change(faulty: Faulty) -> None:
    topology = faulty.topology
    async with crowd(topology) as group:
        faulty.postgres.stop()
        stopped = time.monotonic()
        for n, client in enumerate(group.clients):
            await client.call("set_data", ("during outage", n), timeout=5)  # acknowledged
        await asyncio.sleep(DATABASE_OUTAGE - (time.monotonic() - stopped))
        faulty.postgres.start()
        await asyncio.sleep(CLIENT_PATIENCE)
        assert group.disconnects == []
        assert await group.broadcast_reaches_all("after the outage")
        topology.processes["worker"].stop()  # a worker revived from the database afterwards
        topology.processes["worker"] = worker("faults-worker-after-outage", topology.env, 0, 1)
        for n, client in enumerate(group.clients):
            assert (await client.call("get_data", timeout=10))["during outage"] == n


async def test_a_redis_restart_is_survived_without_restarting_anything(faulty: Faulty) -> None:
    topology = faulty.topology
    async with crowd(topology) as group:
        faulty.redis.kill()
        await asyncio.sleep(3.0)
        faulty.redis.start()  # empty: no persistence
        took = await group.until_broadcasts_reach_all(bound=60.0)
        # Redis' death ended the connections (their consumers lost the channel layer): the clients
        # reconnected by themselves, as stock clients do; some may still be at it
        await wait_until(lambda: all("/" in client.namespaces for client in group.clients), 30)
        for client in group.clients:
            assert await client.call("echo", "back", timeout=10) == "back"
        # Sessions Redis' death ended: those whose consumer died are closed when they do not answer
        # the revived worker (SYNC_GRACE), those a client gave up on when they do not answer pings
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: live_sessions(faulty.postgres) == CLIENTS, GHOSTS_GONE_WITHIN)
        assert live_sessions(faulty.postgres) == CLIENTS  # no ghosts of the connections Redis' death ended
    assert all(process.popen.poll() is None for process in topology.processes.values())
    print(f"broadcasts reached every client again {took:.1f} s after Redis came back")


async def test_the_balancer_skips_a_dead_backend_for_concurrent_requests(faulty: Faulty) -> None:
    dead = free_port()
    process, url = round_robin_proxy("faults-proxy-dead", f"http://127.0.0.1:{dead}", faulty.topology.urls[0])
    try:
        async with aiohttp.ClientSession() as http:

            async def handshake() -> int:
                async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as response:
                    return response.status

            assert await asyncio.gather(*(handshake() for _ in range(20))) == [200] * 20
    finally:
        process.stop()


async def test_several_redis_hosts_keep_every_connection_in_order(django_db_setup: None) -> None:
    """The layer over two Redis hosts (channels-redis' consistent hashing): a worker channel lives
    on one host, so a client's 1,000 events arrive once and in order, and broadcasts and polling
    work across both daphne processes."""
    servers = [RedisServer(), RedisServer()]
    with contextlib.ExitStack() as stack:
        for server in servers:
            server.start()
            stack.callback(server.process.stop)  # type: ignore[union-attr]
        ports = ",".join(str(server.port) for server in servers)
        settings = {"SIOLESS_TEST_REDIS_PORT": ports}
        topology = stack.enter_context(topology_of_its_own("hosts", **settings))
        for scenario, transports in (("order", "websocket"), ("rooms", "websocket"), ("basics", "default")):
            urls = topology.urls[:2] if scenario == "rooms" else [topology.balancer]
            seen = await asyncio.to_thread(run_node, scenario, *urls, transports=transports)
            if scenario == "order":
                assert seen == {"count": 1000, "in_order": True, "errors": []}
        # both hosts carry part of the load (counted in commands: the keys a host holds once the
        # clients have gone, with the random names of the processes' channels, may all be on one)
        used = [server.client().info("stats")["total_commands_processed"] for server in servers]
        assert all(commands > 20 for commands in used), used


@pytest.mark.django_db
def test_the_admin_tells_which_shards_are_served(admin_client: Any) -> None:
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    from sioless.models import ShardLease

    ShardLease.objects.create(shard=0, holder="worker-serving", expires=timezone.now() + timedelta(seconds=10))
    ShardLease.objects.create(shard=1, holder="worker-away", expires=timezone.now() - timedelta(seconds=10))
    page = admin_client.get(reverse("admin:sioless_shardlease_changelist")).content.decode()
    assert "worker-serving" in page and "worker-away" in page
    assert page.count("icon-yes") == 1 and page.count("icon-no") == 1


async def test_a_sentinel_failover_is_survived_like_a_restart(django_db_setup: None) -> None:
    """Redis under Sentinel: the master killed, the replica promoted; the layer finds the new master
    through Sentinel, and the service comes back by itself."""
    master = RedisServer()
    replica = RedisServer(options=["--replicaof", "127.0.0.1", str(master.port)])
    home = Path(tempfile.mkdtemp(prefix="sioless-sentinel-"))
    configuration = home / "sentinel.conf"
    configuration.write_text(
        f"sentinel monitor sioless 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds sioless 1000\n"
        "sentinel failover-timeout sioless 5000\n"
    )
    sentinel = RedisServer(options=[str(configuration), "--sentinel"])
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        for server in (master, replica, sentinel):
            server.start()
            stack.callback(server.process.stop)  # type: ignore[union-attr]
        settings = {
            "SIOLESS_TEST_REDIS_SENTINEL": f"127.0.0.1:{sentinel.port}",
            "SIOLESS_TEST_PING_INTERVAL": str(PING_INTERVAL),
            "SIOLESS_TEST_PING_TIMEOUT": str(PING_TIMEOUT),
        }
        topology = stack.enter_context(topology_of_its_own("sentinel", **settings))
        async with crowd(topology) as group:
            master.kill()
            took = await group.until_broadcasts_reach_all(bound=60.0)
            await wait_until(lambda: all("/" in client.namespaces for client in group.clients), 30)
            for client in group.clients:
                assert await client.call("echo", "after the failover", timeout=10) == "after the failover"
        assert replica.client().info("replication")["role"] == "master"
    print(f"broadcasts reached every client again {took:.1f} s after the master was killed")


async def test_the_first_command_after_a_redis_restart_does_not_fail() -> None:
    """Every pooled connection is closed by a restart of Redis: the command that finds one closed
    is sent again on a new connection (without that, it raised, and the consumer sending it ended)."""
    server = RedisServer()
    server.start()
    try:
        layer = RedisChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{server.port}", "socket_timeout": None}])
        await layer.send("before", {"type": "test.message"})  # the pool now holds a connection
        server.kill()
        server.start()
        await layer.send("after", {"type": "test.message"})
        assert (await layer.receive("after"))["type"] == "test.message"
        await layer.flush()
    finally:
        assert server.process is not None
        server.process.stop()
