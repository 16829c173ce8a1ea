"""ASGI plumbing shared by the engine's consumers: a consumer base without Channels' per-message
costs, WebSocket close codes, and Engine.IO frames in and out of ASGI WebSocket events."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.sessions import InstanceSessionWrapper

from . import twisted_writes
from .protocol.engineio import Frame

logger = logging.getLogger(__name__)

#: WebSocket close codes. ASGI servers send only 1000 and 3000-4999, so the
#: errors are RFC 6455's codes plus 3000: 1002 -> 4002 and so on.
NORMAL_CLOSURE = 1000
PROTOCOL_ERROR = 4002
POLICY_VIOLATION = 4008
MESSAGE_TOO_BIG = 4009
SERVER_ERROR = 4011


def received_frame(event: dict[str, Any]) -> Frame:
    """The frame of an ASGI ``websocket.receive`` (or ``websocket.send``) event: its text, else its bytes."""
    text = event.get("text")
    return text if text is not None else event.get("bytes") or b""


def send_event(frame: Frame) -> dict[str, Any]:
    """The ASGI ``websocket.send`` event of a frame (on every delivery's path: one call, no more)."""
    if isinstance(frame, bytes):
        return {"type": "websocket.send", "bytes": frame}
    return {"type": "websocket.send", "text": frame}


def receive_event(frame: Frame) -> dict[str, Any]:
    """The ASGI ``websocket.receive`` event of a frame (a polling client's, as a WebSocket's would be)."""
    if isinstance(frame, bytes):
        return {"type": "websocket.receive", "bytes": frame}
    return {"type": "websocket.receive", "text": frame}


#: What ASGI servers raise on a send to a connection the client has closed: OSError subclasses
#: (the ASGI spec; uvicorn), and autobahn's Disconnected (daphne).
_GONE: tuple[type[BaseException], ...] = (OSError,)
try:
    from autobahn.exception import Disconnected
except ImportError:  # pragma: no cover - not under daphne
    pass
else:
    _GONE = (OSError, Disconnected)


class LeanConsumer(AsyncConsumer):
    """A consumer that routes messages without Channels' per-message database thread hop (its
    handlers touch no database connection) nor its per-message task and wait, and whose sends to
    a client that is gone are dropped."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Dispatch what the ASGI server and the channel layer send, one message at a time: this
        task reads the ASGI server, a task of its own the channel layer, each for the consumer's
        life (Channels' loop starts a task and a wait for every message; a task less and no wait
        here: a connection's idle memory)."""
        twisted_writes.write_through()  # under daphne: its frames go out without a turn of its reactor
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        self.frame_send = _past_session_wrappers(send)
        dispatching = asyncio.Lock()
        layer_reader = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            layer_reader = asyncio.ensure_future(self._read(self.channel_receive, dispatching))
            layer_reader.add_done_callback(functools.partial(_stop_reading, asyncio.current_task()))
        try:
            try:
                await self._read(receive, dispatching)
            except asyncio.CancelledError:
                if layer_reader is None or not layer_reader.done() or layer_reader.cancelled():
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                layer_reader.result()  # its handler's exception (StopConsumer: the consumer ends)
        except StopConsumer:
            pass
        finally:
            if layer_reader is not None:
                layer_reader.cancel()
                await asyncio.gather(layer_reader, return_exceptions=True)

    async def _read(self, source: Callable[[], Awaitable[dict[str, Any]]], dispatching: asyncio.Lock) -> None:
        """Dispatch each message of ``source`` in turn with those of the consumer's other sources."""
        while True:
            message = await source()
            async with dispatching:
                await self.dispatch(message)

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def send(self, message: dict[str, Any]) -> None:
        """Send an ASGI event (a WebSocket frame past Channels' session wrappers); to a client
        that has gone away, it is dropped (its disconnect comes)."""
        try:
            await (self.frame_send if message["type"] == "websocket.send" else self.base_send)(message)
        except _GONE:
            logger.debug("dropped a %s: the client is gone", message["type"])


def _past_session_wrappers(send: Callable[[dict[str, Any]], Awaitable[None]]) -> Any:
    """The ASGI ``send`` a consumer's WebSocket frames go to: past Channels' session middleware,
    which saves the session only with an HTTP response yet reads it at every send (``modified``,
    ``is_empty()``: a twentieth of daphne's CPU a broadcast delivery). A wrapper that would save
    with a frame is kept."""
    while (
        isinstance(wrapper := getattr(send, "__self__", None), InstanceSessionWrapper)
        and "websocket.send" not in wrapper.save_message_types
    ):
        send = wrapper.real_send
    return send


def _stop_reading(consumer: asyncio.Task[Any] | None, layer_reader: asyncio.Future[None]) -> None:
    """A consumer's channel-layer reader ended with its handler's exception: the consumer's task
    stops reading the ASGI server, and raises it."""
    if consumer is not None and not layer_reader.cancelled() and layer_reader.exception() is not None:
        consumer.cancel()


class Timer:
    """One call due after a delay, at most one at a time: starting it again, or stopping it,
    cancels the one pending."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self, seconds: float, then: Callable[[], Awaitable[None]]) -> None:
        """Call ``then()`` in ``seconds`` unless stopped (or started again) first."""
        self.stop()
        self._task = asyncio.create_task(self._after(seconds, then))

    def stop(self) -> None:
        """Cancel the pending call, if any."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @staticmethod
    async def _after(seconds: float, then: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(seconds)
        await then()
