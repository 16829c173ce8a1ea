"""The heartbeat run by a real qcluster: pings, silent clients, killed servers, group expiry.

A topology of its own (database, channel-layer keys, broker queue) with a fast heartbeat, so the
bounds are seconds: daphne x2 behind a round-robin proxy, a worker for both shards, a qcluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import socketio

from tests.support.clients import Poller, RawEngine, Recorder, gone, sio_client, watcher
from tests.support.database import sql
from tests.support.processes import qcluster, run_node
from tests.support.topologies import Topology, topology_of_its_own
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

PING_INTERVAL = 2.0
PING_TIMEOUT = 5.0
GROUP_EXPIRY = 8
#: Seconds of scheduling noise on a loaded 2-core machine that the bounds below allow.
SLACK = 3.0
#: A client that stops answering: closed at the first tick after PING_TIMEOUT (README).
SILENT_CLIENT_BOUND = PING_TIMEOUT + PING_INTERVAL
#: A killed server's sessions: reaped within 3 ping intervals (README).
GHOST_BOUND = 3 * PING_INTERVAL


@pytest.fixture(scope="module")
def beating(django_db_setup: None) -> Iterator[Topology]:
    settings = {"PING_INTERVAL": PING_INTERVAL, "PING_TIMEOUT": PING_TIMEOUT, "GROUP_EXPIRY": GROUP_EXPIRY}
    with topology_of_its_own(
        "hb", **{f"SIOLESS_TEST_{key}": str(value) for key, value in settings.items()}
    ) as topology:
        yield topology


def processes(database: str) -> dict[str, str]:
    """The server process of every socket, by socket sid."""
    query = (
        "SELECT s.sid, e.process FROM sioless_namespacesocket s JOIN sioless_enginesession e ON e.sid = s.session_id"
    )
    return dict(sql(database, query))


@pytest.mark.parametrize("transports", ["websocket", "default", "polling"])
async def test_pings_reach_a_stock_client(beating: Topology, transports: str) -> None:
    url = beating.urls[0] if transports == "websocket" else beating.urls[2]  # polling: through the proxy
    hold_ms = str(int(4 * PING_INTERVAL * 1000))
    seen = await asyncio.to_thread(run_node, "pings", url, hold_ms, transports=transports)
    assert seen["pings"] >= 3
    assert (seen["disconnects"], seen["stillConnected"]) == ([], True)


async def test_a_client_that_stops_answering_is_dropped_with_ping_timeout(beating: Topology) -> None:
    async with watcher(beating.urls[1]) as (_, heard):
        raw = await RawEngine.open(beating.urls[0])
        try:
            await raw.send("40")
            connected = await raw.receive()
            assert isinstance(connected, str) and connected.startswith("40")
            sid = json.loads(connected[2:])["sid"]
            first_ping = None
            while True:  # never answer
                frame = await raw.ws.receive(timeout=SILENT_CLIENT_BOUND + 2 * PING_INTERVAL + SLACK)
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    break
                if frame.data == "2" and first_ping is None:
                    first_ping = time.monotonic()
            assert first_ping is not None
            assert time.monotonic() - first_ping <= SILENT_CLIENT_BOUND + SLACK
        finally:
            await raw.close()
        found = await heard.next_where("gone", lambda event: event["sid"] == sid)
        assert found["reason"] == "ping timeout"
        await asyncio.sleep(2 * PING_INTERVAL)
        assert [event for event in gone(heard) if event["sid"] == sid] == [], "disconnect handled twice"


async def test_a_qcluster_restart_drops_no_one(beating: Topology) -> None:
    """Stock clients tolerate a heartbeat late by up to PING_TIMEOUT: a qcluster killed and started
    again comes back well within it (README: restarts of up to PING_TIMEOUT minus a few seconds)."""
    hold_ms = str(int(6 * PING_INTERVAL * 1000))
    clients = asyncio.gather(*(asyncio.to_thread(run_node, "pings", url, hold_ms) for url in beating.urls[:2]))
    await asyncio.sleep(PING_INTERVAL)
    beating.processes["qcluster"].kill()
    stopped = time.monotonic()
    beating.processes["qcluster"] = qcluster("hb-qcluster-restarted", beating.env)
    assert time.monotonic() - stopped < PING_TIMEOUT, "the heartbeat took too long to come back"
    for seen in await clients:
        assert (seen["disconnects"], seen["stillConnected"]) == ([], True)
        assert seen["pings"] >= 4


async def test_a_polling_client_that_stops_polling_is_dropped_with_ping_timeout(beating: Topology) -> None:
    async with watcher(beating.urls[1]) as (_, heard), aiohttp.ClientSession() as http:
        session = Poller(http, beating.urls[:2])
        await session.open()
        await session.post("40")
        [connected] = await session.until(1)
        assert isinstance(connected, str)
        sid = json.loads(connected[2:])["sid"]
        stopped = time.monotonic()  # no more GETs: the pings pile up unanswered
        found = await heard.next_where("gone", lambda event: event["sid"] == sid, timeout=3 * SILENT_CLIENT_BOUND)
        assert found["reason"] == "ping timeout"
        assert time.monotonic() - stopped <= SILENT_CLIENT_BOUND + PING_INTERVAL + SLACK


async def test_room_membership_outlives_the_group_expiry(beating: Topology) -> None:
    daphne_a, daphne_b, _ = beating.urls
    async with sio_client(daphne_a) as member, sio_client(daphne_b) as sender:
        disconnects: list[Any] = []
        member.on("disconnect", lambda *reason: disconnects.append(reason))
        news = Recorder(member, "news")
        await member.call("join", "kept", timeout=5)
        await asyncio.sleep(2.5 * GROUP_EXPIRY)
        assert await sender.call("broadcast", ("kept", "still here"), timeout=5) == "sent"
        assert await news.next("news") == "still here"
        assert disconnects == []


async def test_the_sessions_of_a_killed_server_are_reaped(beating: Topology) -> None:
    _, daphne_b, proxy = beating.urls
    async with contextlib.AsyncExitStack() as stack, watcher(daphne_b) as (watching, heard):
        clients = []
        for _ in range(8):
            client = socketio.AsyncClient(reconnection_delay=0.2, reconnection_delay_max=0.5)
            await client.connect(proxy, transports=["websocket"], wait_timeout=5)
            stack.push_async_callback(client.disconnect)
            assert await client.call("join", "ghosts", timeout=5) == ["ghosts"]
            clients.append(client)
        before = [client.get_sid() for client in clients]
        process_of = processes(beating.database)
        survivor_process = process_of[watching.get_sid()]
        ghosts = [sid for sid in before if process_of[sid] != survivor_process]
        (dead_process,) = {process_of[sid] for sid in ghosts}
        assert 0 < len(ghosts) < len(clients), "the proxy did not alternate"

        beating.processes["hb-daphne-a"].kill(signal.SIGKILL)
        killed_at = time.monotonic()
        # the killed server's clients reconnect through the proxy
        await wait_until(lambda: all(client.connected and client.get_sid() not in ghosts for client in clients), 10)
        survivors = [sid for sid in before if sid not in ghosts]
        assert [client.get_sid() for client in clients if client.get_sid() in before] == survivors

        query = "SELECT count(*) FROM sioless_enginesession WHERE process = %s"
        await wait_until(lambda: sql(beating.database, query, (dead_process,)) == [(0,)], GHOST_BOUND + SLACK)
        reaped_after = time.monotonic() - killed_at
        memberships = "SELECT count(*) FROM sioless_roommembership WHERE socket_id = ANY(%s)"
        assert sql(beating.database, memberships, (ghosts,)) == [(0,)]

        await asyncio.sleep(PING_INTERVAL)  # a second reaping would show by now
        # the sockets of this test's clients (the watcher may also hear the last test's clients go)
        disconnects = [event for event in gone(heard) if event["sid"] in before]
        assert sorted(event["sid"] for event in disconnects) == sorted(ghosts), f"reaped in {reaped_after:.1f} s"
        assert {event["reason"] for event in disconnects} == {"transport close"}

        for client in clients:
            await client.call("join", "ghosts", timeout=5)
        news = [Recorder(client, "news") for client in clients]
        assert await clients[0].call("broadcast", ("ghosts", "after the kill"), timeout=5) == "sent"
        assert [await recorder.next("news") for recorder in news] == ["after the kill"] * len(clients)
        await asyncio.sleep(0.5)
        assert all(recorder.empty("news") for recorder in news), "a broadcast reached a client twice"
