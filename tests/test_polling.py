"""The long-polling transport at the protocol level, with every request of a session sent to the
other daphne process than the one before: no sticky sessions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.clients import Poller
from tests.support.topologies import Topology

pytestmark = pytest.mark.e2e

ALLOWED_ORIGIN = "http://allowed.example"  # tests/settings.py


@contextlib.asynccontextmanager
async def polling(production: Topology) -> AsyncIterator[Poller]:
    async with aiohttp.ClientSession() as http:
        poller = Poller(http, production.urls)
        await poller.open()
        yield poller


async def test_the_handshake_offers_the_upgrade(production: Topology) -> None:
    async with polling(production) as session:
        assert session.handshake["upgrades"] == ["websocket"]
        assert session.handshake["pingInterval"] == 25000


async def test_packets_in_one_payload_across_both_servers(production: Topology) -> None:
    async with polling(production) as session:
        assert await session.post("40") == (200, "ok")
        [connect] = await session.until(1)
        assert isinstance(connect, str) and connect.startswith('40{"sid":')
        assert await session.post('421["echo","x"]', '422["echo","y"]', '423["echo","z"]') == (200, "ok")
        assert await session.until(3) == ['431["x"]', '432["y"]', '433["z"]']


async def test_binary_over_polling(production: Topology) -> None:
    async with polling(production) as session:
        await session.post("40")
        await session.until(1)
        assert await session.post('451-1["echo",{"_placeholder":true,"num":0}]', b"\x00\x01\xff") == (200, "ok")
        assert await session.until(2) == ['461-1[{"_placeholder":true,"num":0}]', b"\x00\x01\xff"]


async def test_a_malformed_payload_closes_the_session_and_answers_the_waiting_get(production: Topology) -> None:
    async with polling(production) as session:
        waiting = asyncio.create_task(session.get())
        await asyncio.sleep(0.3)
        assert (await session.post(body="zz"))[0] == 400
        assert await asyncio.wait_for(waiting, 5) == (200, ["1"])


async def test_a_second_get_while_one_waits_closes_the_session(production: Topology) -> None:
    async with polling(production) as session:
        waiting = asyncio.create_task(session.get())
        await asyncio.sleep(0.3)
        second = await session.get()
        # whichever reached the session second (they go through different servers) is refused
        answers = sorted([second, await asyncio.wait_for(waiting, 5)], key=lambda answer: answer[0])
        assert answers == [(200, ["1"]), (400, {"code": 3, "message": "Bad request"})]


async def test_an_oversized_post_is_refused_and_closes_the_session(production: Topology) -> None:
    async with polling(production) as session:
        waiting = asyncio.create_task(session.get())
        await asyncio.sleep(0.3)
        status, _ = await session.post("4" + "x" * (session.handshake["maxPayload"] + 1))
        assert status == 413
        assert await asyncio.wait_for(waiting, 5) == (200, ["1"])


async def test_the_client_closing_ends_the_session(production: Topology) -> None:
    async with polling(production) as session:
        await session.post("40")
        await session.until(1)
        waiting = asyncio.create_task(session.get())
        await asyncio.sleep(0.3)
        assert await session.post("1") == (200, "ok")
        assert await asyncio.wait_for(waiting, 5) == (200, ["6"])  # a NOOP, as Node answers
        assert await session.get() == (400, {"code": 1, "message": "Session ID unknown"})


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_wrong_or_forged_sid_is_unknown(production: Topology, method: str) -> None:
    async with polling(production) as session, aiohttp.ClientSession() as http:
        forged = session.sid[:-4] + ("AAAA" if not session.sid.endswith("AAAA") else "BBBB")
        for sid in ("nope", forged, "a.b.c"):
            async with http.request(method, session.url(sid), data=b"40") as response:
                assert response.status == 400
                assert await response.json() == {"code": 1, "message": "Session ID unknown"}


async def test_wrong_methods_are_refused(production: Topology) -> None:
    async with polling(production) as session, aiohttp.ClientSession() as http:
        async with http.post(f"{production.urls[0]}/socket.io/?EIO=4&transport=polling", data=b"40") as response:
            assert (response.status, await response.json()) == (400, {"code": 2, "message": "Bad handshake method"})
        async with http.put(session.url(), data=b"40") as response:
            assert (response.status, await response.json()) == (400, {"code": 3, "message": "Bad request"})


async def test_the_upgrade_to_a_websocket_on_the_other_server(production: Topology) -> None:
    async with polling(production) as session, aiohttp.ClientSession() as http:
        await session.post("40")
        await session.until(1)
        waiting = asyncio.create_task(session.get())
        await asyncio.sleep(0.3)
        ws_url = production.urls[1].replace("http", "ws", 1)
        async with http.ws_connect(f"{ws_url}/socket.io/?EIO=4&transport=websocket&sid={session.sid}") as ws:
            await ws.send_str("2probe")
            assert (await ws.receive(timeout=5)).data == "3probe"
            assert await asyncio.wait_for(waiting, 5) == (200, ["6"])  # released, so the client can pause
            await ws.send_str("5")
            await ws.send_str('421["echo","over the websocket"]')
            assert (await ws.receive(timeout=5)).data == '431["over the websocket"]'
            assert await session.get() == (400, {"code": 3, "message": "Bad request"})  # polls are over
            await ws.send_str('422["echo","still"]')
            assert (await ws.receive(timeout=5)).data == '432["still"]'


async def test_cors_for_allowed_origins_only(production: Topology) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{production.urls[0]}/socket.io/?EIO=4&transport=polling"
        preflight = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Headers": "content-type"}
        async with http.options(url, headers=preflight) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
        async with http.get(url, headers={"Origin": ALLOWED_ORIGIN}) as response:
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
        async with http.get(url, headers={"Origin": "http://elsewhere.example"}) as response:
            assert response.status == 400  # a page of another origin is refused (tests/test_security.py)
            assert "Access-Control-Allow-Origin" not in response.headers
