"""Idle connections and idle workers survive redis-py's read timeout (5 s by default in redis-py 8)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import socketio

from sioless.names import shard_of
from tests.support.clients import sio_client
from tests.support.topologies import Topology

pytestmark = pytest.mark.e2e

IDLE_SECONDS = 15


async def test_idle_connections_and_idle_workers_keep_working(production: Topology) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[int, socketio.AsyncClient] = {}
        for _ in range(40):
            client = await stack.enter_async_context(sio_client(production.urls[len(clients) % 2]))
            clients.setdefault(shard_of(client.eio.sid, 2), client)
            if len(clients) == 2:
                break
        assert sorted(clients) == [0, 1], "no client landed on one of the shards"
        disconnects: list[object] = []
        for client in clients.values():
            client.on("disconnect", lambda *reason: disconnects.append(reason))
        await asyncio.sleep(IDLE_SECONDS)
        for shard, client in clients.items():
            assert await client.call("echo", f"shard {shard}", timeout=5) == f"shard {shard}"
        assert disconnects == []
