"""Client helpers for tests: python-socketio's AsyncClient, a raw Engine.IO WebSocket and a raw
long-polling session."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import socketio

from sioless.protocol.engineio import decode_payload, encode_payload


class Recorder:
    """Collects the argument of every event a client receives, by event name."""

    def __init__(self, client: socketio.AsyncClient, *events: str) -> None:
        self.seen: dict[str, asyncio.Queue[Any]] = {event: asyncio.Queue() for event in events}
        for event in events:
            client.on(event, functools.partial(self._record, event))

    def _record(self, event: str, first: Any = None, *offset: Any) -> None:
        """Keep an event's argument (with recovery on, the offset socket.io appends follows it)."""
        self.seen[event].put_nowait(first)

    async def next(self, event: str, timeout: float = 5.0) -> Any:
        return await asyncio.wait_for(self.seen[event].get(), timeout)

    async def next_where(self, event: str, wanted: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """The next arguments of ``event`` that ``wanted`` accepts, skipping others."""
        async with asyncio.timeout(timeout):
            while not wanted(found := await self.seen[event].get()):
                pass
        return found

    def empty(self, event: str) -> bool:
        return self.seen[event].empty()


@contextlib.asynccontextmanager
async def sio_client(url: str, **connect: Any) -> AsyncIterator[socketio.AsyncClient]:
    """A python-socketio AsyncClient connected over WebSocket, disconnected afterwards."""
    client = socketio.AsyncClient(reconnection=False)
    connect.setdefault("transports", ["websocket"])
    connect.setdefault("wait_timeout", 5)
    await client.connect(url, **connect)
    try:
        yield client
    finally:
        await client.disconnect()


class RawEngine:
    """An Engine.IO WebSocket driven frame by frame, for protocol tests."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, handshake: dict[str, Any]):
        self.session = session
        self.ws = ws
        self.handshake = handshake

    @classmethod
    async def open(cls, url: str, query: str = "EIO=4&transport=websocket") -> RawEngine:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(f"{url.replace('http', 'ws', 1)}/socket.io/?{query}", autoping=False)
            first = await ws.receive(timeout=5)
        except BaseException:
            await session.close()
            raise
        assert first.type is aiohttp.WSMsgType.TEXT and first.data.startswith("0"), first
        return cls(session, ws, json.loads(first.data[1:]))

    async def send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def receive(self, timeout: float = 5.0) -> str | bytes:
        """The next data frame, answering pings on the way."""
        while True:
            message = await self.ws.receive(timeout=timeout)
            if message.type is aiohttp.WSMsgType.TEXT and message.data == "2":
                await self.ws.send_str("3")
                continue
            if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return message.data  # type: ignore[no-any-return]
            raise ConnectionError(f"closed: {message.type.name} {message.data}")

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """The close code once the server closes, skipping data frames."""
        while True:
            message = await self.ws.receive(timeout=timeout)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return self.ws.close_code
            if message.type is aiohttp.WSMsgType.ERROR:
                return None

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


@contextlib.asynccontextmanager
async def raw_engine(url: str) -> AsyncIterator[RawEngine]:
    """A RawEngine closed afterwards, whatever happens."""
    raw = await RawEngine.open(url)
    try:
        yield raw
    finally:
        await raw.close()


class Poller:
    """An Engine.IO polling session driven request by request, alternating between servers."""

    def __init__(self, http: aiohttp.ClientSession, urls: list[str]) -> None:
        self.http = http
        self.urls = itertools.cycle(urls)
        self.sid = ""
        self.handshake: dict[str, Any] = {}

    def url(self, sid: str | None = None) -> str:
        """The next server's endpoint for this session (or for ``sid``; for a handshake, "")."""
        sid = self.sid if sid is None else sid
        return f"{next(self.urls)}/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")

    async def open(self) -> None:
        async with self.http.get(self.url(sid="")) as response:
            assert response.status == 200, await response.text()
            [opened] = decode_payload(await response.text())
        assert isinstance(opened, str) and opened.startswith("0")
        self.handshake = json.loads(opened[1:])
        self.sid = self.handshake["sid"]

    async def get(self) -> tuple[int, list[str | bytes] | Any]:
        """Status, and the frames (or the error body)."""
        async with self.http.get(self.url()) as response:
            body = await response.text()
            return response.status, decode_payload(body) if response.status == 200 else await response.json()

    async def post(self, *frames: str | bytes, body: str | None = None) -> tuple[int, str]:
        data = encode_payload(frames) if body is None else body
        headers = {"Content-Type": "text/plain;charset=UTF-8"}  # what socket.io-client sends
        async with self.http.post(self.url(), data=data.encode(), headers=headers) as response:
            return response.status, await response.text()

    async def until(self, count: int) -> list[str | bytes]:
        """GET until ``count`` frames other than pings came (answering the pings)."""
        frames: list[str | bytes] = []
        while len(frames) < count:
            status, got = await self.get()
            assert status == 200, got
            for frame in got:
                if frame == "2":
                    await self.post("3")
                else:
                    frames.append(frame)
        return frames


@contextlib.asynccontextmanager
async def watcher(url: str) -> AsyncIterator[tuple[socketio.AsyncClient, Recorder]]:
    """A client in the watchers' room: it hears of every socket that disconnects, with the reason."""
    async with sio_client(url, auth={"watch": True}) as client:
        yield client, Recorder(client, "gone")


def gone(recorder: Recorder) -> list[dict[str, Any]]:
    """The disconnects the watcher heard of so far."""
    seen = []
    while not recorder.empty("gone"):
        seen.append(recorder.seen["gone"].get_nowait())
    return seen


async def refusal(url: str, **connect: object) -> object:
    """What a refused python-socketio client's ``connect_error`` handler receives."""
    client = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue[object] = asyncio.Queue()
    client.on("connect_error", lambda namespace, data: errors.put_nowait(data), namespace="*")
    with pytest.raises(socketio.exceptions.ConnectionError, match="failed to connect"):
        await client.connect(url, transports=["websocket"], wait_timeout=5, **connect)  # type: ignore[arg-type]
    return await asyncio.wait_for(errors.get(), 5)
