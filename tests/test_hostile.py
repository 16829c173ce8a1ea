"""Hostile input against the production topology: each answered cleanly, nobody else affected."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import socketio

from tests.support.clients import RawEngine, raw_engine, sio_client
from tests.support.topologies import Topology

pytestmark = pytest.mark.e2e

PROTOCOL_ERROR = 4002
MESSAGE_TOO_BIG = 4009

CLOSING_FRAMES = {
    "empty text frame": [""],
    "unknown engine packet type": ["9"],
    "engine ping from the client": ["2"],
    "engine upgrade without a probe": ["5"],
    "unknown socket.io packet type": ["47"],
    "non-digit socket.io type": ["4x"],
    "unterminated JSON": ['42["unterminated'],
    "event that is an object": ['42{"not":"a list"}'],
    "event without a name": ["42[]"],
    "event with a number for a name": ["42[1,2]"],
    "NaN in JSON": ['42["echo",NaN]'],
    "deeply nested JSON": ["42" + "[" * 100_000 + "]" * 100_000],
    "JSON nested past MAX_DEPTH": ['42["echo",' + "[" * 600 + "]" * 600 + "]"],
    "a binary packet nested past MAX_DEPTH": [
        '451-["echo",' + "[" * 600 + '{"_placeholder":true,"num":0}' + "]" * 600 + "]"
    ],
    "a number out of range": ['42["echo",1e999,0.5]'],
    "an event name over MAX_NAME_LENGTH": ["42" + json.dumps(["e" * 1001])],
    "ack without an id": ["43[]"],
    "ack id beyond 2**53": ["439007199254740993[]"],
    "ack id of 20 digits": ["4312345678901234567890[]"],
    "ack data that is not a list": ['431{"a":1}'],
    "binary event without a count": ['45["up",{"_placeholder":true,"num":0}]'],
    "binary event with an absurd count": ['451000000-["up",{"_placeholder":true,"num":0}]'],
    "binary event with more than MAX_ATTACHMENTS": ['4511-["up",{"_placeholder":true,"num":0}]'],
    "binary event with a zero count": ['450-["up"]'],
    "binary frame never announced": [b"\x00\x01"],
    "more attachments than announced": ['451-["echo",{"_placeholder":true,"num":0}]', b"one", b"two"],
    "placeholder out of range": ['451-["echo",{"_placeholder":true,"num":5}]', b"one"],
    "placeholder with a string num": ['451-["echo",{"_placeholder":true,"num":"0"}]', b"one"],
    "text while attachments are awaited": ['452-["echo",{"_placeholder":true,"num":0}]', b"one", '42["echo"]'],
    "disconnect carrying data": ['41{"x":1}'],
    "connect with array data": ["40/custom,[1]"],
    "connect error from a client": ['44{"message":"x"}'],
    "event for a namespace never connected": ['42/custom,["hello","x"]'],
    "ack for a namespace never connected": ["43/custom,1[]"],
}


@pytest.fixture
async def bystander(production: Topology) -> AsyncIterator[socketio.AsyncClient]:
    """A well-behaved client on the other daphne; it must be unaffected by the hostile one."""
    async with sio_client(production.urls[1]) as client:
        disconnects: list[str] = []
        client.on("disconnect", lambda *reason: disconnects.append(str(reason)))
        yield client
        assert await client.call("echo", "still here", timeout=5) == "still here"
        assert disconnects == []


@pytest.mark.parametrize("frames", CLOSING_FRAMES.values(), ids=CLOSING_FRAMES.keys())
async def test_malformed_input_closes_only_that_connection(
    production: Topology, bystander: socketio.AsyncClient, frames: list[str | bytes]
) -> None:
    async with raw_engine(production.urls[0]) as raw:
        await raw.send("40")
        assert str(await raw.receive()).startswith('40{"sid":')
        for frame in frames:
            await raw.send(frame)
        assert await raw.closed_with() in (PROTOCOL_ERROR, MESSAGE_TOO_BIG)


async def test_packets_before_connect_close_the_connection(production: Topology, bystander: object) -> None:
    async with raw_engine(production.urls[0]) as raw:
        await raw.send('421["echo","x"]')
        assert await raw.closed_with() == PROTOCOL_ERROR


async def test_oversized_frames_are_refused(production: Topology, bystander: object) -> None:
    async with raw_engine(production.urls[0]) as raw:
        assert raw.handshake["maxPayload"] == 100_000
        await raw.send("40")
        await raw.receive()
        await raw.send(b"\x00" * 100_001)
        assert await raw.closed_with() == MESSAGE_TOO_BIG


HOSTILE_NAMES = ["", " ", "\x00", "a,b", "/", "ü🙂", "x" * 1000, "room\nwith\nnewlines", "../../etc", "%00;DROP"]
#: JSON carries lone surrogates (as escapes); a WebSocket text frame cannot.
HOSTILE_ROOMS = [*HOSTILE_NAMES, "\ud800", "a\udfffb"]


async def test_any_characters_in_namespace_room_and_event_names(production: Topology, bystander: object) -> None:
    async with raw_engine(production.urls[0]) as raw:
        for name in HOSTILE_NAMES:
            namespace = "/nope" + name.replace(",", "")
            await raw.send(f"40{namespace},")
            assert json.loads(str(await raw.receive()).split(",", 1)[1]) == {"message": "Invalid namespace"}
        await raw.send("40")
        await raw.receive()
        await raw.send('421["whoami"]')
        sid = json.loads(str(await raw.receive())[3:])[0]["sid"]
        for name in HOSTILE_ROOMS:
            await raw.send("421" + json.dumps(["join", name]))
            assert json.loads(str(await raw.receive())[3:]) == [[name]]
            await raw.send("421" + json.dumps(["fetch_room", name]))
            assert json.loads(str(await raw.receive())[3:]) == [[sid]]
            await raw.send("421" + json.dumps(["leave", name]))
            assert json.loads(str(await raw.receive())[3:]) == [[]]
        for name in HOSTILE_NAMES:
            await raw.send("421" + json.dumps([name, 1]))
            assert json.loads(str(await raw.receive())[3:]) == [{"caught": name, "args": [1]}]


async def test_unknown_ack_ids_and_lifecycle_event_names_are_ignored(production: Topology) -> None:
    async with raw_engine(production.urls[0]) as raw:
        await raw.send("40")
        await raw.receive()
        for frame in ["4312345[1]", '42["connect",{}]', '421["disconnect","x"]', '42["echo"]']:
            await raw.send(frame)
        await raw.send('427["echo","alive"]')
        assert await raw.receive() == '437["alive"]'


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("EIO=3&transport=polling", 5),
        ("transport=polling", 5),
        ("EIO=4", 0),
        ("EIO=4&transport=flashsocket", 0),
        ("EIO=4&transport=websocket", 0),
        ("EIO=4&transport=polling&sid=nope", 1),
    ],
)
async def test_http_requests_get_engine_io_error_codes(production: Topology, query: str, code: int) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{production.urls[0]}/socket.io/?{query}") as response:
        assert response.status == 400
        assert await response.json() == {"code": code, "message": response_message(code)}


def response_message(code: int) -> str:
    return {0: "Transport unknown", 1: "Session ID unknown", 5: "Unsupported protocol version"}[code]


@pytest.mark.parametrize("query", ["EIO=3&transport=websocket", "EIO=4&transport=polling", "EIO=4&sid=x"])
async def test_websocket_handshakes_with_a_bad_query_are_refused(production: Topology, query: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await RawEngine.open(production.urls[0], query)
