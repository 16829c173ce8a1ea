"""The edges of the protocol, asked of Node's socket.io server and of sioless alike.

Each test runs with a raw Engine.IO client (plain HTTP requests and WebSockets, no socket.io
library) against the reference server (socket.io 4.x under Node, tests/js/reference_server.mjs),
sioless in development and sioless in production (two daphne processes behind the balancer), all
with the same short timeouts, and asserts the same status codes, packets, order and time bounds.
Where sioless differs on purpose, the test says so and so does the README.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.support.clients import Poller, RawEngine, raw_engine
from tests.support.processes import development_server, reference_server
from tests.support.topologies import Topology, topology_of_its_own

pytestmark = pytest.mark.e2e

PING_INTERVAL = 1.0
PING_TIMEOUT = 3.0
CONNECT_TIMEOUT = 2.0
UPGRADE_TIMEOUT = 2.0
#: Scheduling noise a bound allows on a loaded 2-core machine.
SLACK = 1.5
TIMEOUTS = {
    "SIOLESS_TEST_PING_INTERVAL": str(PING_INTERVAL),
    "SIOLESS_TEST_PING_TIMEOUT": str(PING_TIMEOUT),
    "SIOLESS_TEST_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
    "SIOLESS_TEST_UPGRADE_TIMEOUT": str(UPGRADE_TIMEOUT),
}


@pytest.fixture(scope="module")
def node_reference() -> Iterator[str]:
    timeouts = (PING_INTERVAL, PING_TIMEOUT, CONNECT_TIMEOUT, UPGRADE_TIMEOUT)
    with reference_server("conformance-node", *timeouts) as url:
        yield url


@pytest.fixture(scope="module")
def development_with_timeouts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with development_server("conformance-runserver", tmp_path_factory.mktemp("conformance"), **TIMEOUTS) as url:
        yield url


@pytest.fixture(scope="module")
def production_with_timeouts(django_db_setup: None) -> Iterator[Topology]:
    with topology_of_its_own("conf", **TIMEOUTS) as topology:
        yield topology


@pytest.fixture(params=["node", "development", "production"])
def server(request: pytest.FixtureRequest) -> str:
    """The base URL of each server in turn (production: the balancer, every request to the next daphne)."""
    if request.param == "node":
        return str(request.getfixturevalue("node_reference"))
    if request.param == "development":
        return str(request.getfixturevalue("development_with_timeouts"))
    return request.getfixturevalue("production_with_timeouts").balancer


async def frames_until_closed(raw: RawEngine, limit: float) -> tuple[list[str | bytes], float]:
    """The frames a connection gets (its pings answered) until the server closes it; and when."""
    frames: list[str | bytes] = []
    deadline = time.monotonic() + limit
    while True:
        try:
            frames.append(await raw.receive(timeout=max(0.1, deadline - time.monotonic())))
        except ConnectionError:
            return frames, time.monotonic()


async def test_emits_of_the_connect_handler_follow_connect(server: str) -> None:
    async with raw_engine(server) as raw:
        await raw.send('40{"greet":true}')
        connect, *welcomes = [str(await raw.receive()) for _ in range(3)]
        assert connect.startswith('40{"sid":')
        assert welcomes == ['42["welcome",1]', '42["welcome",2]']


async def test_a_refusal_sends_only_connect_error(server: str) -> None:
    async with raw_engine(server) as raw:
        await raw.send('40{"greet":true,"refuse":"no"}')  # sioless' handler emits, then refuses
        assert await raw.receive() == '44{"message":"refused","data":{"reason":"no"}}'
        await raw.send('40{"greet":false}')
        assert str(await raw.receive()).startswith('40{"sid":')


async def test_a_connection_that_never_connects_a_namespace_is_closed(server: str) -> None:
    raw = await RawEngine.open(server)
    try:
        opened = time.monotonic()
        frames, closed = await frames_until_closed(raw, CONNECT_TIMEOUT + 10)
    finally:
        await raw.close()
    assert frames == []
    assert CONNECT_TIMEOUT - 0.2 <= closed - opened <= CONNECT_TIMEOUT + SLACK


async def polling_session(http: aiohttp.ClientSession, server: str) -> Poller:
    poller = Poller(http, [server])
    await poller.open()
    assert await poller.post("40") == (200, "ok")
    await poller.until(1)
    return poller


def websocket_url(server: str, sid: str) -> str:
    return f"{server.replace('http', 'ws', 1)}/socket.io/?EIO=4&transport=websocket&sid={sid}"


async def test_an_upgrade_never_probed_is_closed_after_the_upgrade_timeout(server: str) -> None:
    async with aiohttp.ClientSession() as http:
        poller = await polling_session(http, server)
        ws = await http.ws_connect(websocket_url(server, poller.sid), autoping=False)
        opened = time.monotonic()
        message = await ws.receive(timeout=UPGRADE_TIMEOUT + 10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert UPGRADE_TIMEOUT - 0.2 <= time.monotonic() - opened <= UPGRADE_TIMEOUT + SLACK
        assert await poller.post('421["echo","polling goes on"]') == (200, "ok")
        assert await poller.until(1) == ['431["polling goes on"]']


async def upgrade(http: aiohttp.ClientSession, server: str, sid: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(websocket_url(server, sid), autoping=False)
    await ws.send_str("2probe")
    assert (await ws.receive(timeout=5)).data == "3probe"
    await ws.send_str("5")
    return ws


async def refused_or_closed_at_once(http: aiohttp.ClientSession, url: str) -> bool:
    """Whether a WebSocket handshake is refused, or the WebSocket closed before anything else
    (Node accepts one for an upgraded session, then closes it; sioless refuses it)."""
    try:
        ws = await http.ws_connect(url, autoping=False)
    except aiohttp.WSServerHandshakeError:
        return True
    message = await ws.receive(timeout=1)
    await ws.close()
    return message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_a_websocket_for_a_session_upgraded_closed_or_unknown_is_refused(server: str) -> None:
    async with aiohttp.ClientSession() as http:
        upgraded = await polling_session(http, server)
        ws = await upgrade(http, server, upgraded.sid)
        closed = await polling_session(http, server)
        assert await closed.post("1") == (200, "ok")
        for sid in (upgraded.sid, closed.sid, "unknown" + upgraded.sid[7:]):
            assert await refused_or_closed_at_once(http, websocket_url(server, sid))
        await ws.send_str('421["echo","still upgraded"]')
        assert (await ws.receive(timeout=5)).data == '431["still upgraded"]'
        await ws.close()


async def test_a_closed_polling_session_is_unknown_at_once(server: str) -> None:
    async with aiohttp.ClientSession() as http:
        poller = await polling_session(http, server)
        waiting = asyncio.ensure_future(poller.get())
        await asyncio.sleep(0.3)
        assert await poller.post("1") == (200, "ok")
        assert await waiting == (200, ["6"])  # the client closed: its waiting GET gets a NOOP
        for _ in range(2):
            started = time.monotonic()
            status, body = await poller.get()
            assert (status, body) == (400, {"code": 1, "message": "Session ID unknown"})
            assert time.monotonic() - started < 0.5
        assert (await poller.post("3"))[0] == 400


async def test_a_polling_session_past_its_ping_timeout_is_unknown_at_once(server: str) -> None:
    async with aiohttp.ClientSession() as http:
        poller = await polling_session(http, server)
        await asyncio.sleep(PING_INTERVAL * 1.5 + PING_TIMEOUT + PING_INTERVAL + SLACK)  # no GET: no pong
        started = time.monotonic()
        status, body = await poller.get()
        assert (status, body) == (400, {"code": 1, "message": "Session ID unknown"})
        assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("get_waiting", [False, True], ids=["no GET waiting", "a GET waiting"])
async def test_the_upgrade_writes_a_noop_only_to_release_a_waiting_get(server: str, get_waiting: bool) -> None:
    async with aiohttp.ClientSession() as http:
        poller = await polling_session(http, server)
        waiting = asyncio.ensure_future(poller.get()) if get_waiting else None
        await asyncio.sleep(0.3)
        ws = await http.ws_connect(websocket_url(server, poller.sid), autoping=False)
        await ws.send_str("2probe")
        assert (await ws.receive(timeout=5)).data == "3probe"
        if waiting is not None:
            assert await waiting == (200, ["6"])
        await ws.send_str("5")
        await ws.send_str('421["echo","first"]')
        first = await ws.receive(timeout=5)
        while first.data == "2":  # a ping may come first; never a NOOP
            await ws.send_str("3")
            first = await ws.receive(timeout=5)
        assert first.data == '431["first"]'
        await ws.close()


async def test_a_handler_may_acknowledge_later_or_never(server: str) -> None:
    async with raw_engine(server) as raw:
        await raw.send("40")
        await raw.receive()
        sent = time.monotonic()
        await raw.send('421["later","v"]')
        await raw.send('422["never"]')
        await raw.send('423["echo","z"]')
        assert await raw.receive() == '433["z"]'
        assert await raw.receive() == '431["v"]'
        assert time.monotonic() - sent >= 0.15
        with pytest.raises(asyncio.TimeoutError):
            await raw.receive(timeout=0.5)  # no ack for 2


async def test_the_first_ping_comes_about_a_ping_interval_after_open_and_silence_is_closed(server: str) -> None:
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(f"{server.replace('http', 'ws', 1)}/socket.io/?EIO=4&transport=websocket")
        await ws.receive(timeout=5)
        opened = time.monotonic()
        await ws.send_str("40")
        assert (await ws.receive(timeout=5)).data.startswith("40")
        assert (await ws.receive(timeout=PING_INTERVAL * 2 + SLACK)).data == "2"
        pinged = time.monotonic()
        assert PING_INTERVAL / 2 - 0.2 <= pinged - opened <= PING_INTERVAL * 1.5 + SLACK
        message = await ws.receive(timeout=PING_TIMEOUT + PING_INTERVAL + SLACK + 5)  # the ping unanswered
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert PING_TIMEOUT - 0.2 <= time.monotonic() - pinged <= PING_TIMEOUT + PING_INTERVAL + SLACK
    finally:
        await session.close()
