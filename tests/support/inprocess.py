"""The whole server in the test's own process, for the fast tier: engine consumers driven with
Channels' communicators, and a :class:`~sioless.worker.Worker` serving their shards, on one
channel layer (sioless' in-memory layer unless the test's settings name another)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections

from sioless.conf import conf
from sioless.protocol.engineio import Frame
from sioless.routing import websocket_endpoint
from sioless.server import sio
from sioless.store import in_store_thread
from sioless.worker import Worker

#: Seconds a test waits for a frame it expects.
FRAME_WAIT = 5.0


class EngineClient:
    """A raw Engine.IO WebSocket client of an :class:`EngineConsumer` in this process: it sends and
    receives Socket.IO frames, and answers the server's pings."""

    def __init__(self, communicator: WebsocketCommunicator, opened: dict[str, Any]) -> None:
        self.communicator = communicator
        self.opened = opened
        #: The sid of the socket of each namespace connected through :meth:`connect`.
        self.sids: dict[str, str] = {}
        #: Frames that came while :meth:`call` waited for its ack, for :meth:`receive`.
        self.early: list[Frame] = []
        #: The ack ids of :meth:`call`, as a client numbers them: each once.
        self.ack_ids = itertools.count(100)

    @classmethod
    async def open(
        cls, query: str = "", headers: list[tuple[bytes, bytes]] | None = None, user: Any = None
    ) -> EngineClient:
        """A connected client, the OPEN packet taken; with ``user``, as Django's auth middleware
        would have found that user in the request's session."""
        path = f"/socket.io/?EIO=4&transport=websocket{query}"
        app: Any = websocket_endpoint
        if user is not None:

            async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
                await websocket_endpoint({**scope, "user": user}, receive, send)

        communicator = WebsocketCommunicator(app, path, headers=headers or [])
        connected, _ = await communicator.connect()
        assert connected
        first = await communicator.receive_from(FRAME_WAIT)
        assert first[0] == "0", first
        return cls(communicator, json.loads(first[1:]))

    async def send(self, frame: Frame) -> None:
        """Send a Socket.IO frame (text as an Engine.IO MESSAGE; bytes as a binary attachment)."""
        if isinstance(frame, bytes):
            await self.communicator.send_to(bytes_data=frame)
        else:
            await self.communicator.send_to(text_data=f"4{frame}")

    async def receive(self, timeout: float = FRAME_WAIT) -> Frame:
        """The next Socket.IO frame; pings are answered on the way."""
        if self.early:
            return self.early.pop(0)
        while True:
            event = await self.communicator.receive_output(timeout)
            if event["type"] == "websocket.close":
                raise ConnectionResetError(f"closed with code {event.get('code')}")
            if event.get("bytes") is not None:
                return bytes(event["bytes"])
            text = event["text"]
            if text == "2":
                await self.communicator.send_to(text_data="3")
                continue
            assert text.startswith("4"), text
            return str(text[1:])

    async def receive_json(self, prefix: str, timeout: float = FRAME_WAIT) -> Any:
        """The payload of the next frame, which must start with ``prefix``."""
        frame = await self.receive(timeout)
        assert isinstance(frame, str) and frame.startswith(prefix), (prefix, frame)
        return json.loads(frame[len(prefix) :]) if frame[len(prefix) :] else None

    async def nothing_more(self, seconds: float = 0.5) -> bool:
        """Whether nothing comes for ``seconds`` (the connection stays usable)."""
        return not self.early and bool(await self.communicator.receive_nothing(seconds))

    async def closed(self, timeout: float = FRAME_WAIT) -> int | None:
        """Wait until the server closes the connection (frames before it are skipped); its code."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.communicator.receive_output(timeout)
                if event["type"] == "websocket.close":
                    return event.get("code")

    async def connect(self, namespace: str = "/", auth: dict[str, Any] | None = None) -> dict[str, Any]:
        """Connect a namespace; the CONNECT packet's payload (the sid, and the pid with recovery on)."""
        prefix = "0" if namespace == "/" else f"0{namespace},"
        await self.send(prefix + (json.dumps(auth) if auth is not None else ""))
        answer = await self.receive_json(prefix)
        self.sids[namespace] = answer["sid"]
        return dict(answer)

    async def call(self, event: str, *args: Any, ack_id: int | None = None, namespace: str = "/") -> Any:
        """Emit an event asking for an ack (with ``ack_id``, or the next of this client's), and
        return the ack's arguments (frames that come before it are left for :meth:`receive`)."""
        prefix = "" if namespace == "/" else f"{namespace},"
        ack_id = next(self.ack_ids) if ack_id is None else ack_id
        await self.send(f"2{prefix}{ack_id}{json.dumps([event, *args])}")
        early, self.early = self.early, []
        try:
            while True:
                frame = await self.receive()
                if isinstance(frame, str) and frame.startswith(f"3{prefix}{ack_id}["):
                    return json.loads(frame[len(f"3{prefix}{ack_id}") :])
                early.append(frame)
        finally:
            self.early = early + self.early

    async def disconnect(self) -> None:
        """Close the WebSocket as a client going away does (unless the connection has ended)."""
        if not self.communicator.future.done():
            await self.communicator.disconnect()


@contextlib.asynccontextmanager
async def served(shards: list[int] | None = None) -> AsyncIterator[Worker]:
    """A worker serving ``shards`` (all of them by default) on the channel layer of the settings, with
    the test project's handlers, stopped at the end."""
    worker = Worker(sio, get_channel_layer(), range(conf.SHARDS) if shards is None else shards)
    running = asyncio.ensure_future(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        try:  # an idle read of the in-memory layer loses nothing when cancelled: no grace to wait out
            with mock.patch("sioless.worker.RECEIVE_GRACE", 0.0):
                await asyncio.wait_for(running, 15)
        finally:
            await let_go_of_the_database()


async def let_go_of_the_database() -> None:
    """Close the connections of the store's thread and of sync handlers' thread: the test database
    is flushed after a test, and dropped at the end."""
    await in_store_thread(connections.close_all)
    await database_sync_to_async(connections.close_all)()
