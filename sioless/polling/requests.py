"""One HTTP request of the polling transport, on any process: the handshake starts a session in
this process; a GET or POST with a sid is carried to its session, wherever it is, and answered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.exceptions import ChannelFull, StopConsumer

from .. import messages
from ..conf import conf
from ..exceptions import ProtocolError
from ..handshake import parsed_query, query_error
from ..origins import Trust, header, origin_trust
from ..protocol import engineio
from ..protocol.engineio import Frame, HandshakeError
from ..reasons import DisconnectReason
from ..sids import session_channel
from ..transport import LeanConsumer, Timer
from .cors import cors_headers
from .session import open_session

logger = logging.getLogger(__name__)

#: Seconds a POST waits for the session to take its packets before it answers "Session ID unknown".
POST_TIMEOUT = 10.0
#: Seconds the handshake waits for the new session's OPEN packet.
HANDSHAKE_TIMEOUT = 10.0


class PollingConsumer(LeanConsumer):
    """One HTTP request of the polling transport, on any process: the handshake (a GET with no
    sid) starts a session here; a GET or POST with a sid goes to the session wherever it is."""

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.received = 0
        self.timer = Timer()
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
        self.timer.stop()
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
        self.timer.start(timeout, self.timed_out)
        await self.channel_layer.send(session, {**request, "reply": self.channel_name})

    async def timed_out(self) -> None:
        """No reply in time: reply to this consumer itself that the session is gone."""
        await self.channel_layer.send(self.channel_name, {"type": messages.REPLY, "timeout": True})

    async def sioless_reply(self, message: dict[str, Any]) -> None:
        """The session's answer: packets for a GET, "ok" for a POST, or an error."""
        self.timer.stop()
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
