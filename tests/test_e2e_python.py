"""python-socketio's AsyncClient against real servers: the flows the Node tests do not cover."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import socketio

from sioless import sio
from tests.support.clients import Recorder, raw_engine, refusal, sio_client
from tests.support.topologies import Topology

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["production", "development"])
def topology(request: pytest.FixtureRequest) -> Topology:
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_events_acks_binary_and_a_custom_namespace(topology: Topology, transport: str) -> None:
    """Over WebSocket, and forced to polling through the balancer (each request to the next server)."""
    await events_acks_binary_and_a_custom_namespace(topology, transport)


async def events_acks_binary_and_a_custom_namespace(
    topology: Topology, transport: str, serializer: str = "default"
) -> None:
    """A python-socketio client with ``serializer`` sends events with and without binary, in two
    namespaces, and answers a call."""
    client = socketio.AsyncClient(reconnection=False, serializer=serializer)
    url = topology.urls[0] if transport == "websocket" else topology.balancer
    await client.connect(url, transports=[transport], namespaces=["/", "/custom"], auth={"token": "secret"})
    try:
        assert client.transport() == transport
        assert await client.call("echo", ["a", 2], timeout=5) == ["a", 2]
        assert await client.call("echo", b"\x00\xffbytes", timeout=5) == b"\x00\xffbytes"
        assert await client.call("hello", "py", namespace="/custom", timeout=5) == "hello py from /custom"
        client.on("question", lambda n: n * 2)
        assert await client.call("ask_me", 2, timeout=5) == {"answer": 82}
    finally:
        await client.disconnect()


async def test_refusal_and_unknown_namespace(topology: Topology) -> None:
    refused = await refusal(topology.urls[0], auth={"refuse": "no"})
    assert refused == {"message": "refused", "data": {"reason": "no"}}
    unknown = await refusal(topology.urls[0], namespaces=["/nowhere"])
    assert unknown == {"message": "Invalid namespace"}


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_handlers_see_the_django_user_of_the_session(production: Topology, transport: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{production.urls[1]}/login/ada/") as response:
        assert response.status == 200
        cookie = "; ".join(f"{c.key}={c.value}" for c in response.cookies.values())
    url = production.urls[0] if transport == "websocket" else production.balancer
    async with sio_client(url, headers={"Cookie": cookie}, transports=[transport]) as client:
        me = await client.call("whoami", timeout=5)
    assert me["user"] == "ada"
    assert me["has_cookie_header"] is False
    async with sio_client(production.urls[0]) as anonymous:
        assert (await anonymous.call("whoami", timeout=5))["user"] is None


async def test_emit_from_a_view_and_from_another_process_reaches_every_daphne(production: Topology) -> None:
    async with sio_client(production.urls[0]) as a, sio_client(production.urls[1]) as b:
        received = [Recorder(a, "news"), Recorder(b, "news")]
        for client in (a, b):
            await client.call("join", "view-room", timeout=5)
        async with aiohttp.ClientSession() as http:
            body = {"event": "news", "args": [{"from": "view"}], "to": "view-room"}
            async with http.post(f"{production.urls[1]}/emit/", json=body) as response:
                assert response.status == 200
        assert [await r.next("news") for r in received] == [{"from": "view"}] * 2
        await sio.aemit("news", "from pytest", to="view-room")
        assert [await r.next("news") for r in received] == ["from pytest"] * 2
        await sio.aemit("news", "to a only", to=a.get_sid())
        assert await received[0].next("news") == "to a only"
        await asyncio.sleep(0.3)
        assert received[1].empty("news")


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        (["41"], "client namespace disconnect"),
        (["1"], "transport close"),
        ([], "transport close"),
        (["42" + "x" * 100_001], "transport error"),
        (['42["unterminated'], "parse error"),
    ],
)
async def test_disconnect_reasons_reach_the_handler(production: Topology, frames: list[str], reason: str) -> None:
    async with sio_client(production.urls[0], auth={"watch": True}) as watcher:
        gone = Recorder(watcher, "gone")
        async with raw_engine(production.urls[1]) as raw:
            await raw.send("40")
            sid = json.loads(str(await raw.receive())[2:])["sid"]
            for frame in frames:
                await raw.send(frame)
            if not frames:
                await raw.ws.close()
            seen = await gone.next_where("gone", lambda gone: gone["sid"] == sid)
        assert seen == {"sid": sid, "reason": reason}


async def test_a_thousand_events_in_order(topology: Topology) -> None:
    async with sio_client(topology.urls[0]) as client:
        for n in range(1000):
            await client.emit("seq", n)
        assert await client.call("seq_report", timeout=10) == {"count": 1000, "in_order": True, "errors": []}
