"""A bounded live fuzz: a few thousand mutated frames and payloads against the running production
topology. The servers stay up, a bystander is unaffected, every connection either goes on or is
closed cleanly (a close code of the README's, an HTTP 4xx), and no exception escapes a consumer."""

from __future__ import annotations

import random
from collections.abc import Iterator

import aiohttp
import pytest

from tests.support.clients import Poller, RawEngine, sio_client
from tests.support.topologies import Topology

pytestmark = pytest.mark.e2e

SEED = 20261201
CONNECTIONS = 100
FRAMES_A_CONNECTION = 25
POLLING_SESSIONS = 20
POSTS_A_SESSION = 15
CLEAN_CLOSES = {1000, 4002, 4008, 4009}
VALID_FRAMES: list[str | bytes] = [
    "40",
    "40/custom,{}",
    '42["echo",1,"two",{"three":[3]}]',
    '421["echo",{"a":[1,2.5,null,true]}]',
    '42["join","room"]',
    '43123["x"]',
    '451-["echo",{"_placeholder":true,"num":0}]',
    b"\x01\x02\x03",
    "41",
    "3",
    "2",
    "5",
    "6",
]
SPECIALS = ['"', "[", "]", "{", "}", ",", "-", "/", "\\", "\x00", "\x1e", "é", "🙂", "9", "0", "e999", "NaN"]


def mutate(rng: random.Random, frame: str | bytes) -> str | bytes:
    """One random change of a valid frame: a character replaced, inserted or removed, a cut, a repeat."""
    if isinstance(frame, bytes):
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 12)))
    text = frame
    position = rng.randint(0, len(text))
    how = rng.randrange(5)
    if how == 0:
        return text[:position] + rng.choice(SPECIALS) + text[position + 1 :]
    if how == 1:
        return text[:position] + rng.choice(SPECIALS) + text[position:]
    if how == 2:
        return text[:position] + text[position + 1 :]
    if how == 3:
        return text[:position]
    return text[:position] + text[position:] * rng.randint(2, 50)


def frames(rng: random.Random, count: int) -> Iterator[str | bytes]:
    for _ in range(count):
        frame = rng.choice(VALID_FRAMES)
        yield mutate(rng, frame) if rng.random() < 0.8 else frame


def exceptions_logged(topology: Topology) -> int:
    return sum(process.log().count("Traceback") for name, process in topology.processes.items())


@pytest.fixture
def bystander_count(production: Topology) -> Iterator[None]:
    before = exceptions_logged(production)
    yield
    assert exceptions_logged(production) == before


async def test_mutated_websocket_frames(production: Topology, bystander_count: None) -> None:
    rng = random.Random(SEED)
    async with sio_client(production.urls[1]) as bystander:
        disconnects: list[object] = []
        bystander.on("disconnect", lambda *reason: disconnects.append(reason))
        closes: dict[int | None, int] = {}
        for _ in range(CONNECTIONS):
            raw = await RawEngine.open(production.urls[0])
            try:
                await raw.send("40")
                await raw.receive()
                for frame in frames(rng, FRAMES_A_CONNECTION):
                    if raw.ws.closed:
                        break
                    await raw.send(frame)
                if not raw.ws.closed:
                    await raw.send("1")  # whatever state it is in, an Engine.IO close ends it
                code = await raw.closed_with(timeout=10)
                closes[code] = closes.get(code, 0) + 1
            finally:
                await raw.close()
        assert set(closes) <= CLEAN_CLOSES, closes
        assert await bystander.call("echo", "unharmed", timeout=5) == "unharmed"
        assert disconnects == []


async def test_mutated_polling_payloads(production: Topology, bystander_count: None) -> None:
    rng = random.Random(SEED + 1)
    statuses: dict[int, int] = {}
    async with sio_client(production.urls[1]) as bystander, aiohttp.ClientSession() as http:
        for _ in range(POLLING_SESSIONS):
            poller = Poller(http, production.urls)
            await poller.open()
            for _ in range(POSTS_A_SESSION):
                parts = [frame for frame in frames(rng, rng.randint(1, 4))]
                body = "\x1e".join(f"4{p}" if isinstance(p, str) else "b" + p.hex() for p in parts)
                status, _ = await poller.post(body=mutate(rng, body) if rng.random() < 0.5 else body)  # type: ignore[arg-type]
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    break
        assert set(statuses) <= {200, 400, 413}, statuses
        assert await bystander.call("echo", "unharmed", timeout=5) == "unharmed"
