"""HTTP long-polling, and its upgrade to WebSocket, with no sticky sessions.

A polling session is held by a :class:`PolledSession`: the engine consumer of
:mod:`sioless.consumers`, run in the process that answered the handshake, with the session's
HTTP requests as its transport. Those requests may land on any process: the sid names the
session's channel (:mod:`sioless.sids`), and a :class:`PollingConsumer` carries each request
there through the channel layer and the answer back. A GET waits there for packets, a POST
hands packets over. After an upgrade, an :class:`UpgradeConsumer` (the WebSocket, on any
process) relays the session's packets both ways instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.exceptions import ChannelFull, StopConsumer

from . import messages
from .conf import conf
from .consumers import (
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    PROTOCOL_ERROR,
    EngineConsumer,
    LeanConsumer,
    parsed_query,
    payload_size,
    query_error,
)
from .exceptions import ProtocolError
from .origins import Trust, header, origin_trust
from .protocol import engineio
from .protocol.engineio import Frame, HandshakeError, PacketType
from .reasons import DisconnectReason
from .sids import polling_sid, session_channel

logger = logging.getLogger(__name__)

CLOSE_FRAME = engineio.encode(engineio.Packet(PacketType.CLOSE))
NOOP_FRAME = engineio.encode(engineio.Packet(PacketType.NOOP))
#: Seconds a WebSocket waits for the polling session to say whether it may upgrade it.
UPGRADE_CHECK_TIMEOUT = 5.0
#: Seconds a POST waits for the session to take its packets before it answers "Session ID unknown".
POST_TIMEOUT = 10.0
#: Seconds the handshake waits for the new session's OPEN packet.
HANDSHAKE_TIMEOUT = 10.0

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

    The ASGI events the consumer would send to a WebSocket become packets held for the next GET
    (or, after the upgrade, relayed to the WebSocket); the packets of POSTs come in as the
    WebSocket's frames would.
    """

    transport = "polling"
    upgrades = ["websocket"]

    def __init__(self, opened: asyncio.Future[Frame]) -> None:
        super().__init__()
        self.opened = opened
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.held: list[Frame] = []
        self.waiting_get: str | None = None
        self.relay: str | None = None
        #: A WebSocket probed the upgrade: GETs are released with a NOOP until it upgrades or goes.
        self.probed = False
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

    async def transport_send(self, event: dict[str, Any]) -> None:
        """Take an ASGI WebSocket event the consumer sends, as the transport the session has now."""
        if event["type"] == "websocket.send":
            frame: Frame = event["text"] if event.get("text") is not None else event["bytes"]
            if not self.opened.done():
                self.opened.set_result(frame)
            else:
                await self.deliver([frame])
        elif event["type"] == "websocket.close":
            await self.closed(event.get("code", 1000))

    async def closed(self, code: int) -> None:
        """The session ended: as Node does, a waiting GET gets a CLOSE packet (a NOOP if the client
        closed), what was held is dropped, and every request from now on gets "Session ID unknown"
        at once, until no request would wait for an answer any more."""
        self.ended = True
        if self.relay is not None:
            await self.tell(self.relay, {"type": messages.RELAY_CLOSE, "code": code})
        elif self.waiting_get is not None:
            client_closed = self.ended_by is DisconnectReason.TRANSPORT_CLOSE
            await self.reply(self.waiting_get, frames=[NOOP_FRAME if client_closed else CLOSE_FRAME])
            self.waiting_get = None
        self.held = []
        asyncio.get_running_loop().call_later(conf.PING_INTERVAL + conf.PING_TIMEOUT, self.stop)

    def stop(self) -> None:
        """End the consumer, as a WebSocket's disconnect would."""
        self.events.put_nowait({"type": "websocket.disconnect"})

    async def deliver(self, frames: list[Frame]) -> None:
        """Send frames to the client: to the WebSocket after an upgrade, else to the next GET."""
        if self.relay is not None:
            await self.tell(self.relay, {"type": messages.RELAY_FRAMES, "frames": frames})
            return
        self.held.extend(frames)
        await self.answer_get()

    async def answer_get(self) -> None:
        """Give the waiting GET the frames held, if both are there."""
        if self.waiting_get is None or not self.held:
            return
        frames, self.held = self.held, []
        await self.reply(self.waiting_get, frames=frames)
        self.waiting_get = None

    async def reply(self, request: str, **answer: Any) -> None:
        await self.tell(request, {"type": messages.REPLY, **answer})

    async def tell(self, channel: str, message: dict[str, Any]) -> None:
        """Send to a request or WebSocket; one that cannot take it is given up on."""
        try:
            await self.channel_layer.send(channel, message)
        except ChannelFull:
            logger.warning("session %s: channel %s is full, message dropped", self.eio_sid, channel)

    async def sioless_poll(self, message: dict[str, Any]) -> None:
        """A GET for packets: answered when there are some. A second GET while one waits is a
        protocol violation that closes the session; after the upgrade, GETs are refused."""
        if message["sid"] != self.eio_sid:
            return
        if self.ended:
            await self.reply(message["reply"], error=HandshakeError.UNKNOWN_SID)
            return
        if self.relay is not None or self.waiting_get is not None:
            await self.reply(message["reply"], error=HandshakeError.BAD_REQUEST)
            if self.relay is None:
                await self.close(DisconnectReason.TRANSPORT_ERROR, PROTOCOL_ERROR)
            return
        self.waiting_get = message["reply"]
        if self.probed and not self.held:
            await self.release_get()  # as Node's 100 ms check after the probe does
        await self.answer_get()

    async def sioless_post(self, message: dict[str, Any]) -> None:
        """Packets from the client (a POST, or the WebSocket after the upgrade)."""
        if message["sid"] != self.eio_sid:
            return
        if self.ended:
            if message.get("reply"):
                await self.reply(message["reply"], error=HandshakeError.UNKNOWN_SID)
            return
        if message.get("error"):
            code = MESSAGE_TOO_BIG if message["error"] == DisconnectReason.TRANSPORT_ERROR else PROTOCOL_ERROR
            await self.close(DisconnectReason(message["error"]), code)
            return
        for frame in message.get("frames", []):
            await self.websocket_receive({"text": frame} if isinstance(frame, str) else {"bytes": frame})
        if message.get("reply"):
            if self.ended_by is DisconnectReason.TRANSPORT_ERROR:  # past its bound: closed
                await self.reply(message["reply"], error=HandshakeError.BAD_REQUEST)
            else:
                await self.reply(message["reply"], ok=True)

    async def sioless_can_upgrade(self, message: dict[str, Any]) -> None:
        """A WebSocket asks whether it may take the session over: not once upgraded, nor once ended."""
        if message["sid"] == self.eio_sid:
            if self.ended or self.relay is not None:
                await self.reply(message["reply"], error=HandshakeError.BAD_REQUEST)
            else:
                await self.reply(message["reply"], ok=True)

    def client_present(self) -> bool:
        """A polling client is there while a GET of it waits (or its WebSocket is relayed)."""
        return self.relay is not None or self.waiting_get is not None

    async def sioless_poll_gone(self, message: dict[str, Any]) -> None:
        """The waiting GET's client went away before its answer."""
        if message["sid"] == self.eio_sid and message["reply"] == self.waiting_get:
            self.waiting_get = None

    async def sioless_probe(self, message: dict[str, Any]) -> None:
        """The client probes a WebSocket: release its waiting GET (and any that comes before the
        upgrade) with a NOOP, so that it can pause polling. No NOOP is written for later: it
        would reach the WebSocket after the upgrade."""
        if message["sid"] == self.eio_sid and self.relay is None:
            self.probed = True
            await self.release_get()

    async def release_get(self) -> None:
        """Answer the waiting GET, if one waits, with a NOOP."""
        if self.waiting_get is not None:
            await self.reply(self.waiting_get, frames=[NOOP_FRAME])
            self.waiting_get = None

    async def sioless_upgrade(self, message: dict[str, Any]) -> None:
        """The client moved to the WebSocket: send everything there from now on."""
        if message["sid"] != self.eio_sid or self.relay is not None:
            return
        await self.release_get()
        self.relay = message["relay"]
        frames, self.held = self.held, []
        if frames:
            await self.deliver(frames)

    async def sioless_relay_gone(self, message: dict[str, Any]) -> None:
        """The WebSocket the session had upgraded to closed (the session ends with it), or one
        that probed went before upgrading (polling goes on as before the probe)."""
        if message["sid"] != self.eio_sid:
            return
        if message["relay"] == self.relay:
            await self.websocket_disconnect({})
        elif self.relay is None:
            self.probed = False


class PollingConsumer(LeanConsumer):
    """One HTTP request of the polling transport, on any process: the handshake (a GET with no
    sid) starts a session here; a GET or POST with a sid goes to the session wherever it is."""

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.received = 0
        self.timer: asyncio.Task[None] | None = None
        #: A GET waiting for its session's answer: the session's channel, and its sid.
        self.polling: tuple[str, str] | None = None

    async def http_request(self, message: dict[str, Any]) -> None:
        """Collect the body, then answer the request."""
        chunk = message.get("body", b"")
        self.received += len(chunk)
        self.body.append(chunk)
        if self.received > conf.MAX_PAYLOAD:
            await self.refuse_oversized()
        elif not message.get("more_body"):
            await self.answer(b"".join(self.body))

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        """The client left (a GET's packets, if any come, are lost with it): a GET waiting tells its
        session, which no longer takes its client for there."""
        self.stop_timer()
        if self.polling is not None:
            session, sid = self.polling
            with contextlib.suppress(ChannelFull):
                gone = {"type": messages.POLL_GONE, "sid": sid, "reply": self.channel_name}
                await self.channel_layer.send(session, gone)
        raise StopConsumer

    async def answer(self, body: bytes) -> None:
        method = self.scope["method"]
        query = parsed_query(self.scope)
        if origin_trust(self.scope) is Trust.REFUSED:
            logger.warning("refused a polling request from the page of origin %s", header(self.scope, b"origin"))
            await self.refuse(HandshakeError.FORBIDDEN)
        elif method == "OPTIONS":
            await self.respond(204, b"", cors_preflight=True)
            return
        sid = query.pop("sid", [""])[-1]
        error = query_error(query, "polling")
        if error is not None:
            await self.refuse(error)
        elif not sid:
            await (self.handshake() if method == "GET" else self.refuse(HandshakeError.BAD_HANDSHAKE_METHOD))
        elif (session := session_channel(sid)) is None:
            await self.refuse(HandshakeError.UNKNOWN_SID)
        elif method == "GET":
            self.polling = (session, sid)
            await self.ask(session, {"type": messages.POLL, "sid": sid}, conf.PING_INTERVAL + conf.PING_TIMEOUT)
        elif method == "POST":
            await self.post(session, sid, body)
        else:
            await self.refuse(HandshakeError.BAD_REQUEST)

    async def handshake(self) -> None:
        """Start a session in this process and answer with its OPEN packet."""
        try:
            frame = await asyncio.wait_for(open_session(self.scope), HANDSHAKE_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            await self.refuse(HandshakeError.BAD_REQUEST)
            return
        await self.respond_frames([frame])

    async def post(self, session: str, sid: str, body: bytes) -> None:
        """Hand the POSTed packets to the session; a malformed payload closes it."""
        try:
            frames = engineio.decode_payload(body.decode("utf-8"))
        except (UnicodeDecodeError, ProtocolError):
            await self.channel_layer.send(
                session, {"type": messages.POST, "sid": sid, "error": DisconnectReason.PARSE_ERROR.value}
            )
            await self.refuse(HandshakeError.BAD_REQUEST)
            return
        await self.ask(session, {"type": messages.POST, "sid": sid, "frames": frames}, POST_TIMEOUT)

    async def refuse_oversized(self) -> None:
        """A body over MAX_PAYLOAD: 413, and the session is closed ("transport error")."""
        query = parsed_query(self.scope)
        sid = query.get("sid", [""])[-1]
        if (session := session_channel(sid)) is not None:
            error = {"type": messages.POST, "sid": sid, "error": DisconnectReason.TRANSPORT_ERROR.value}
            await self.channel_layer.send(session, error)
        await self.respond(413, b"Payload Too Large", content_type=b"text/plain")

    async def ask(self, session: str, request: dict[str, Any], timeout: float) -> None:
        """Send a request to the session; its reply (or our own timeout) comes to this consumer."""
        self.timer = asyncio.create_task(self.time_out(timeout))
        await self.channel_layer.send(session, {**request, "reply": self.channel_name})

    async def time_out(self, seconds: float) -> None:
        """After ``seconds`` with no reply, reply to this consumer itself that the session is gone."""
        await asyncio.sleep(seconds)
        await self.channel_layer.send(self.channel_name, {"type": messages.REPLY, "timeout": True})

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    async def sioless_reply(self, message: dict[str, Any]) -> None:
        """The session's answer: packets for a GET, "ok" for a POST, or an error."""
        self.stop_timer()
        self.polling = None
        if "frames" in message:
            await self.respond_frames(message["frames"])
        elif message.get("ok"):
            await self.respond(200, b"ok", content_type=b"text/html")
        elif message.get("timeout"):
            await self.refuse(HandshakeError.UNKNOWN_SID)
        else:
            await self.refuse(HandshakeError(message["error"]))

    async def respond_frames(self, frames: list[Frame]) -> None:
        await self.respond(200, engineio.encode_payload(frames).encode(), content_type=b"text/plain; charset=UTF-8")

    async def refuse(self, error: HandshakeError) -> None:
        await self.respond(400, engineio.handshake_error_body(error), content_type=b"application/json")

    async def respond(
        self, status: int, body: bytes, *, content_type: bytes = b"text/plain", cors_preflight: bool = False
    ) -> None:
        """Send the whole response and end the consumer."""
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        headers += cors_headers(self.scope, preflight=cors_preflight)
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
        raise StopConsumer


def cors_headers(scope: dict[str, Any], *, preflight: bool) -> list[tuple[bytes, bytes]]:
    """The CORS headers for a request from an allowed origin (none for others); with credentials
    only for the origins trusted with them."""
    request = dict(scope.get("headers", []))
    origin = request.get(b"origin")
    trust = origin_trust(scope)
    if origin is None or trust is Trust.REFUSED:
        return []
    headers = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
    if trust is Trust.CREDENTIALS:
        headers.append((b"access-control-allow-credentials", b"true"))
    if preflight:
        headers += [
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
            (b"access-control-allow-headers", request.get(b"access-control-request-headers", b"content-type")),
            (b"access-control-max-age", b"86400"),
        ]
    return headers


class UpgradeConsumer(LeanConsumer):
    """The WebSocket a polling session upgrades to, on any process: it answers the probe, then
    relays the session's packets both ways."""

    def __init__(self) -> None:
        self.sid = ""
        self.session: str | None = None
        self.accepted = False
        self.upgraded = False
        #: The session this WebSocket probed or upgraded, told when the WebSocket goes.
        self.probed: str | None = None
        self.timer: asyncio.Task[None] | None = None

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        query = parsed_query(self.scope)
        self.sid = query.pop("sid", [""])[-1]
        self.session = session_channel(self.sid) if query_error(query, "websocket") is None else None
        if origin_trust(self.scope) is Trust.REFUSED:
            logger.warning("refused an upgrade from the page of origin %s", header(self.scope, b"origin"))
            self.session = None
        if self.session is None:
            await self.send({"type": "websocket.close"})
            return
        ask = {"type": messages.CAN_UPGRADE, "sid": self.sid, "reply": self.channel_name}
        await self.channel_layer.send(self.session, ask)
        self.timer = asyncio.create_task(self.close_after(UPGRADE_CHECK_TIMEOUT))

    async def sioless_reply(self, message: dict[str, Any]) -> None:
        """The session's answer: accept the WebSocket, which then has UPGRADE_TIMEOUT to finish
        the upgrade; or refuse it (an upgraded or closed session)."""
        if self.accepted or self.session is None:
            return
        self.stop_timer()
        if not message.get("ok"):
            self.session = None
            await self.send({"type": "websocket.close"})
            return
        self.accepted = True
        await self.send({"type": "websocket.accept"})
        self.timer = asyncio.create_task(self.close_after(conf.UPGRADE_TIMEOUT))

    async def close_after(self, seconds: float) -> None:
        """Close (or refuse) the WebSocket if it has not upgraded the session within ``seconds``."""
        await asyncio.sleep(seconds)
        if not self.upgraded:
            self.session = None
            await self.send({"type": "websocket.close"})

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """The probe and the upgrade packet; then the client's packets, for the session."""
        frame: Frame = message["text"] if message.get("text") is not None else message.get("bytes") or b""
        if self.session is None:
            return
        if self.upgraded:
            if payload_size(frame) > conf.MAX_PAYLOAD:
                await self.end(DisconnectReason.TRANSPORT_ERROR, MESSAGE_TOO_BIG)
                return
            try:
                await self.channel_layer.send(self.session, {"type": messages.POST, "sid": self.sid, "frames": [frame]})
            except ChannelFull:  # the session's process is overwhelmed: this client waits no longer
                await self.end(DisconnectReason.TRANSPORT_ERROR, POLICY_VIOLATION)
        elif frame == "2probe":
            await self.send({"type": "websocket.send", "text": "3probe"})
            await self.channel_layer.send(self.session, {"type": messages.PROBE, "sid": self.sid})
            self.probed = self.session
        elif frame == engineio.encode(engineio.Packet(PacketType.UPGRADE)):
            self.upgraded = True
            self.probed = self.session
            self.stop_timer()
            upgrade = {"type": messages.UPGRADE, "sid": self.sid, "relay": self.channel_name}
            await self.channel_layer.send(self.session, upgrade)
        else:
            await self.send({"type": "websocket.close", "code": PROTOCOL_ERROR})

    async def end(self, reason: DisconnectReason, code: int) -> None:
        """Close the WebSocket, and the session with it (or, if its channel is full, when the
        WebSocket's disconnect tells it)."""
        assert self.session is not None
        try:
            await self.channel_layer.send(self.session, {"type": messages.POST, "sid": self.sid, "error": reason.value})
            self.session = None
        except ChannelFull:
            logger.warning("session %s: its channel is full; it hears of the close when the WebSocket goes", self.sid)
        await self.send({"type": "websocket.close", "code": code})

    async def sioless_relay_frames(self, message: dict[str, Any]) -> None:
        for frame in message["frames"]:
            key = "text" if isinstance(frame, str) else "bytes"
            await self.send({"type": "websocket.send", key: frame})

    async def sioless_relay_close(self, message: dict[str, Any]) -> None:
        self.session = None
        await self.send({"type": "websocket.close", "code": message["code"]})

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self.stop_timer()
        if self.probed is not None and (self.session is not None or not self.upgraded):
            gone = {"type": messages.RELAY_GONE, "sid": self.sid, "relay": self.channel_name}
            try:
                await self.channel_layer.send(self.probed, gone)
            except ChannelFull:
                logger.warning("session %s: its channel is full; the heartbeat ends it", self.sid)
        raise StopConsumer
