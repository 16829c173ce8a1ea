"""The engine side of a long-polling session: an engine consumer whose transport is its HTTP
requests (and, after the upgrade, the WebSocket that relays it), run in the process that took
the handshake."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.exceptions import ChannelFull

from .. import messages
from ..conf import conf
from ..consumers import EngineConsumer
from ..protocol import engineio
from ..protocol.engineio import Frame, HandshakeError, PacketType
from ..reasons import DisconnectReason
from ..sids import polling_sid
from ..transport import MESSAGE_TOO_BIG, NORMAL_CLOSURE, PROTOCOL_ERROR, Timer, receive_event, received_frame

logger = logging.getLogger(__name__)

CLOSE_FRAME = engineio.encode(engineio.Packet(PacketType.CLOSE))
NOOP_FRAME = engineio.encode(engineio.Packet(PacketType.NOOP))
#: How often, after an upgrade probe, a waiting GET is released with a NOOP (Node's check interval).
NOOP_CHECK_INTERVAL = 0.1

#: The messages of the session's requests and WebSocket: each names the session by its ``sid``.
FROM_CLIENT = frozenset(
    {
        messages.POLL,
        messages.POST,
        messages.CAN_UPGRADE,
        messages.POLL_GONE,
        messages.PROBE,
        messages.UPGRADE,
        messages.RELAY_GONE,
    }
)

#: The polling sessions this process holds, kept from the garbage collector while they run.
_sessions: set[asyncio.Task[None]] = set()


def open_session(scope: dict[str, Any]) -> asyncio.Future[Frame]:
    """Start a polling session in this process; the future gets its OPEN packet."""
    opened: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
    session = PolledSession(opened)
    task = asyncio.create_task(session.run({**scope, "type": "websocket"}))
    _sessions.add(task)
    task.add_done_callback(_sessions.discard)
    return opened


class PolledSession(EngineConsumer):
    """The engine side of one long-polling session, run in the process that took its handshake.

    The ASGI events the consumer would send to a WebSocket become packets kept for the next GET
    (or, after the upgrade, relayed to the WebSocket); the packets of POSTs come in as the
    WebSocket's frames would.
    """

    transport = "polling"
    upgrades = ["websocket"]

    def __init__(self, opened: asyncio.Future[Frame]) -> None:
        super().__init__()
        self.opened = opened
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        #: Frames for the client that wait for its next GET.
        self.for_next_get: list[Frame] = []
        self.waiting_get: str | None = None
        self.relay: str | None = None
        #: A WebSocket probed the upgrade: a waiting GET is released with a NOOP every
        #: NOOP_CHECK_INTERVAL until it upgrades or goes.
        self.probed = False
        self.noop_checks = Timer()
        self.ended = False

    async def run(self, scope: dict[str, Any]) -> None:
        """Serve the session until it ends."""
        self.events.put_nowait({"type": "websocket.connect"})
        try:
            await self(scope, self.events.get, self.transport_send)
        finally:
            if not self.opened.done():
                self.opened.cancel()

    def new_sid(self) -> str:
        return polling_sid(self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Dispatch a message; one from a client's request or WebSocket only if it names this
        session, and once the session is closed if its ping went unanswered past PING_TIMEOUT
        (as Node's timer would have closed it: the heartbeat's next tick may be a while away)."""
        if message["type"] in FROM_CLIENT:
            if message["sid"] != self.eio_sid:
                return
            if not self.ended and self.ping_overdue():
                await self.close(DisconnectReason.PING_TIMEOUT, NORMAL_CLOSURE)
        await super().dispatch(message)

    async def transport_send(self, event: dict[str, Any]) -> None:
        """Take an ASGI WebSocket event the consumer sends, as the transport the session has now."""
        if event["type"] == "websocket.send":
            frame = received_frame(event)
            if not self.opened.done():
                self.opened.set_result(frame)
            else:
                await self.deliver([frame])
        elif event["type"] == "websocket.close":
            await self.closed(event.get("code", 1000))

    async def closed(self, code: int) -> None:
        """The session ended: a waiting GET gets its last answer (:meth:`last_answer`), what was kept
        for a GET is dropped, and every request from now on gets "Session ID unknown" at once, until
        no request would wait for an answer any more."""
        self.ended = True
        self.noop_checks.stop()
        if self.relay is not None:
            await self.tell(self.relay, {"type": messages.RELAY_CLOSE, "code": code})
        elif (waiting := self.waiting_get) is not None:
            self.waiting_get = None
            await self.reply(waiting, **self.last_answer())
        self.for_next_get = []
        asyncio.get_running_loop().call_later(conf.PING_INTERVAL + conf.PING_TIMEOUT, self.stop)

    def last_answer(self) -> dict[str, Any]:
        """What a GET waiting as the session ends gets: a NOOP when the client closed, a CLOSE
        packet when what the client sent ended it (malformed, oversized, a second GET), as Node
        answers. Otherwise "Session ID unknown" (HTTP 400), where Node writes a CLOSE packet: the
        client comes back, as after a lost connection, where python-socketio's client would give
        up (a ping timeout after a network partition, the server process stopping, the worker
        taking the process for dead, handing the session over or not knowing it)."""
        reason = self.ended_by_worker or self.ended_by
        by_the_consumer = self.ended_by_worker is None
        if by_the_consumer and reason is DisconnectReason.TRANSPORT_CLOSE:
            return {"frames": [NOOP_FRAME]}
        if reason is DisconnectReason.PARSE_ERROR or (by_the_consumer and reason is DisconnectReason.TRANSPORT_ERROR):
            return {"frames": [CLOSE_FRAME]}
        return {"error": HandshakeError.UNKNOWN_SID}

    def stop(self) -> None:
        """End the consumer, as a WebSocket's disconnect would."""
        self.events.put_nowait({"type": "websocket.disconnect"})

    async def deliver(self, frames: list[Frame]) -> None:
        """Send frames to the client: to the WebSocket after an upgrade, else to the next GET."""
        if self.relay is not None:
            await self.tell(self.relay, {"type": messages.RELAY_FRAMES, "frames": frames})
            return
        self.for_next_get.extend(frames)
        await self.answer_get()

    async def answer_get(self) -> None:
        """Give the waiting GET the frames kept for it, if both are there."""
        if self.waiting_get is None or not self.for_next_get:
            return
        frames, self.for_next_get = self.for_next_get, []
        await self.reply(self.waiting_get, frames=frames)
        self.waiting_get = None

    async def reply(self, request: str, **answer: Any) -> None:
        await self.tell(request, {"type": messages.REPLY, **answer})

    async def tell(self, channel: str, message: dict[str, Any]) -> None:
        """Send to a request or WebSocket; one that cannot take it is given up on."""
        try:
            await self.channel_layer.send(channel, message)
        except ChannelFull:
            logger.warning("session %s: channel %s is full, message dropped", self.session_key, channel)

    async def sioless_poll(self, message: dict[str, Any]) -> None:
        """A GET for packets: answered when there are some. A second GET while one waits is a
        protocol violation that closes the session; after the upgrade, GETs are refused."""
        if self.ended:
            await self.reply(message["reply"], error=HandshakeError.UNKNOWN_SID)
            return
        if self.relay is not None or self.waiting_get is not None:
            await self.reply(message["reply"], error=HandshakeError.BAD_REQUEST)
            if self.relay is None:
                await self.close(DisconnectReason.TRANSPORT_ERROR, PROTOCOL_ERROR)
            return
        self.waiting_get = message["reply"]
        await self.answer_get()

    async def sioless_post(self, message: dict[str, Any]) -> None:
        """Packets from the client (a POST, or the WebSocket after the upgrade)."""
        if self.ended:
            if message.get("reply"):
                await self.reply(message["reply"], error=HandshakeError.UNKNOWN_SID)
            return
        if message.get("error"):
            code = MESSAGE_TOO_BIG if message["error"] == DisconnectReason.TRANSPORT_ERROR else PROTOCOL_ERROR
            await self.close(DisconnectReason(message["error"]), code)
            return
        for frame in message.get("frames", []):
            await self.websocket_receive(receive_event(frame))
        if message.get("reply"):
            if self.ended_by is DisconnectReason.TRANSPORT_ERROR:  # past its bound: closed
                await self.reply(message["reply"], error=HandshakeError.BAD_REQUEST)
            else:
                await self.reply(message["reply"], ok=True)

    async def sioless_can_upgrade(self, message: dict[str, Any]) -> None:
        """A WebSocket asks whether it may take the session over: not once ended (the session is
        unknown), nor once upgraded (a bad request)."""
        if self.ended:
            await self.reply(message["reply"], error=HandshakeError.UNKNOWN_SID)
        elif self.relay is not None:
            await self.reply(message["reply"], error=HandshakeError.BAD_REQUEST)
        else:
            await self.reply(message["reply"], ok=True)

    def client_present(self) -> bool:
        """A polling client is there while a GET of it waits (or its WebSocket is relayed)."""
        return self.relay is not None or self.waiting_get is not None

    @property
    def polling(self) -> bool:
        """Whether the client still polls (it has not upgraded to its WebSocket)."""
        return self.relay is None

    async def sioless_poll_gone(self, message: dict[str, Any]) -> None:
        """The waiting GET's client went away before its answer."""
        if message["reply"] == self.waiting_get:
            self.waiting_get = None

    async def sioless_probe(self, message: dict[str, Any]) -> None:
        """The client probes a WebSocket: as Node does, from NOOP_CHECK_INTERVAL on, a GET that
        waits is released with a NOOP, so that the client can pause polling (what is due to it
        meanwhile goes first, as a packet it awaits). No NOOP is written for later: it would
        reach the WebSocket after the upgrade."""
        if self.relay is None and not self.probed:
            self.probed = True
            self.noop_checks.start(NOOP_CHECK_INTERVAL, self.release_gets_while_probed)

    async def release_gets_while_probed(self) -> None:
        """Release a waiting GET with a NOOP every NOOP_CHECK_INTERVAL, from the probe until the
        upgrade (or the probing WebSocket going, or the session ending)."""
        while self.probed and self.relay is None and not self.ended:
            await self.release_get()
            await asyncio.sleep(NOOP_CHECK_INTERVAL)

    async def release_get(self) -> None:
        """Answer the waiting GET, if one waits, with a NOOP."""
        if (waiting := self.waiting_get) is not None:
            self.waiting_get = None
            await self.reply(waiting, frames=[NOOP_FRAME])

    async def sioless_upgrade(self, message: dict[str, Any]) -> None:
        """The client moved to the WebSocket: send everything there from now on."""
        if self.relay is not None:
            return
        await self.release_get()
        self.relay = message["relay"]
        frames, self.for_next_get = self.for_next_get, []
        if frames:
            await self.deliver(frames)
        if self.outbox is not None and not self.closing:  # the worker notes it (and signals it)
            await self.outbox.control({"type": messages.UPGRADED})

    async def sioless_relay_gone(self, message: dict[str, Any]) -> None:
        """The WebSocket the session had upgraded to closed (the session ends with it), or one
        that probed went before upgrading (polling goes on as before the probe)."""
        if message["relay"] == self.relay:
            await self.websocket_disconnect({})
        elif self.relay is None:
            self.probed = False
