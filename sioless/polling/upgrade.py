"""The WebSocket a polling session upgrades to, on any process."""

from __future__ import annotations

import logging
from typing import Any

from channels.exceptions import ChannelFull, StopConsumer

from .. import messages
from ..conf import conf
from ..consumers import payload_size
from ..handshake import parsed_query, query_error
from ..origins import Trust, header, origin_trust
from ..protocol import engineio
from ..protocol.engineio import HandshakeError, PacketType
from ..reasons import DisconnectReason
from ..sids import session_channel, session_key
from ..transport import (
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    PROTOCOL_ERROR,
    LeanConsumer,
    Timer,
    received_frame,
    send_event,
)

logger = logging.getLogger(__name__)

#: Seconds a WebSocket waits for the polling session to say whether it may upgrade it.
UPGRADE_CHECK_TIMEOUT = 5.0
UPGRADE_FRAME = engineio.encode(engineio.Packet(PacketType.UPGRADE))


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
        self.timer = Timer()

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
        self.timer.start(UPGRADE_CHECK_TIMEOUT, self.close_unless_upgraded)

    async def sioless_reply(self, message: dict[str, Any]) -> None:
        """The session's answer: accept the WebSocket, which then has UPGRADE_TIMEOUT to finish
        the upgrade; or refuse it (a closed session); or, as Node does for a session already
        upgraded, accept it and close it at once."""
        if self.accepted or self.session is None:
            return
        self.timer.stop()
        if message.get("ok") or message.get("error") == HandshakeError.BAD_REQUEST:
            self.accepted = True
            await self.send({"type": "websocket.accept"})
        if not message.get("ok"):
            self.session = None
            await self.send({"type": "websocket.close"})
            return
        self.timer.start(conf.UPGRADE_TIMEOUT, self.close_unless_upgraded)

    async def close_unless_upgraded(self) -> None:
        """Close (or refuse) the WebSocket if it has not upgraded the session in time."""
        if not self.upgraded:
            self.session = None
            await self.send({"type": "websocket.close"})

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """The probe and the upgrade packet; then the client's packets, for the session."""
        frame = received_frame(message)
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
        elif frame == UPGRADE_FRAME:
            self.upgraded = True
            self.probed = self.session
            self.timer.stop()
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
            logger.warning(
                "session %s: its channel is full; it hears of the close when the WebSocket goes", session_key(self.sid)
            )
        await self.send({"type": "websocket.close", "code": code})

    async def sioless_relay_frames(self, message: dict[str, Any]) -> None:
        for frame in message["frames"]:
            await self.send(send_event(frame))

    async def sioless_relay_close(self, message: dict[str, Any]) -> None:
        self.session = None
        await self.send({"type": "websocket.close", "code": message["code"]})

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self.timer.stop()
        if self.probed is not None and (self.session is not None or not self.upgraded):
            gone = {"type": messages.RELAY_GONE, "sid": self.sid, "relay": self.channel_name}
            try:
                await self.channel_layer.send(self.probed, gone)
            except ChannelFull:
                logger.warning("session %s: its channel is full; the heartbeat ends it", session_key(self.sid))
        raise StopConsumer
