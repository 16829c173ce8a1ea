"""The engine side: one Channels consumer per client connection.

It speaks Engine.IO (handshake, ping/pong, framing, payload limit) and passes
Socket.IO frames to its shard's worker without decoding them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from channels.exceptions import ChannelFull, StopConsumer

from . import autobahn_debug, embedded, engine_stats, messages, shutdown
from .conf import conf
from .exceptions import ProtocolError
from .flow import Outbox
from .handshake import handshake_from_scope, parsed_query, query_error
from .layers import group_add_all
from .names import HEARTBEAT_GROUP, process_of, shard_of, worker_channel
from .origins import Trust, header, origin_trust
from .protocol import engineio
from .protocol.engineio import PacketType
from .reasons import DisconnectReason
from .recovery import offset_key
from .sids import session_key
from .transport import (
    MESSAGE_TOO_BIG,
    NORMAL_CLOSURE,
    POLICY_VIOLATION,
    PROTOCOL_ERROR,
    SERVER_ERROR,
    LeanConsumer,
    received_frame,
    send_event,
)

#: The last heartbeat tick this process reported alive to the ticker: one report a process a tick.
_reported_tick = 0

#: Most broadcasts a connection holds while one of its sockets is recovered, and most seconds
#: (checked at each heartbeat tick): past either, what it holds is sent as it is.
HOLD_LIMIT = 1000
HOLD_SECONDS = 10.0
#: Acks a connection remembers it sent, to send the ack of an event handled again (its worker died)
#: once: twice the frames a connection may have in flight, the most a dead worker can leave.
ACKS_REMEMBERED = 64

logger = logging.getLogger(__name__)


class EngineConsumer(LeanConsumer):
    """One Engine.IO connection over WebSocket (and, as :class:`~sioless.polling.PolledSession`,
    one over HTTP long-polling)."""

    #: The transport its session starts on, and the ones it offers to upgrade to.
    transport = "websocket"
    upgrades: list[str] = []

    def __init__(self) -> None:
        self.eio_sid = ""
        self.session_key = ""
        self.outbox: Outbox | None = None
        self.groups: set[str] = set()
        self.groups_added_at = 0.0
        self.ping_sent_at: float | None = None
        self.opened_at = 0.0
        self.closing = True
        self.ended_by: DisconnectReason | None = None
        #: Why its worker closed the session, when the worker did.
        self.ended_by_worker: DisconnectReason | None = None
        #: While a socket is recovered: the broadcasts of its namespace's packet log held, by log.
        self.holding: dict[str, _HeldBroadcasts] = {}
        #: The acks the client was sent (made at its first ack).
        self.acks_sent: _SentAcks | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve the connection; however it ends (a crash, the server's shutdown), the worker is told."""
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:  # the server is stopping: deliver the close before it does
            await self.end(DisconnectReason.SERVER_SHUTTING_DOWN)
            if self.outbox is not None:
                await self.outbox.drain(shutdown.SHUTDOWN_GRACE)
            raise
        except Exception:
            await self.end(DisconnectReason.TRANSPORT_ERROR)
            raise

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Validate the query, open the session and announce it to the worker."""
        query = parsed_query(self.scope)
        trust = origin_trust(self.scope)
        if query_error(query, self.transport) is not None or trust is Trust.REFUSED:
            if trust is Trust.REFUSED:
                logger.warning("refused a connection from the page of origin %s", header(self.scope, b"origin"))
            await self.send({"type": "websocket.close"})
            return
        if conf.EMBEDDED_WORKER:
            embedded.ensure_worker()
        autobahn_debug.format_only_when_debugging()
        self.eio_sid = self.new_sid()
        self.session_key = session_key(self.eio_sid)
        worker = worker_channel(shard_of(self.session_key, conf.SHARDS))
        self.outbox = Outbox(self.channel_layer, worker, {"eio": self.session_key, "reply": self.channel_name})
        self.closing = False
        self.opened_at = time.monotonic()
        shutdown.serving(self)
        if (watch := engine_stats.watch) is not None:
            watch.opened(self)
        await self.send({"type": "websocket.accept"})
        await self.send_frame(
            engineio.open_packet(
                self.eio_sid,
                ping_interval_ms=int(conf.PING_INTERVAL * 1000),
                ping_timeout_ms=int(conf.PING_TIMEOUT * 1000),
                max_payload=conf.MAX_PAYLOAD,
                upgrades=self.upgrades,
            )
        )
        await self.channel_layer.group_add(HEARTBEAT_GROUP, self.channel_name)
        self.groups_added_at = time.monotonic()
        handshake = handshake_from_scope(self.scope, query, with_user=trust is Trust.CREDENTIALS).to_message()
        await self.outbox.control({"type": messages.OPEN, "handshake": handshake})

    def new_sid(self) -> str:
        """The Engine.IO sid of a new session."""
        return secrets.token_urlsafe(15)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """Take one frame from the client."""
        frame = received_frame(message)
        if self.closing or self.outbox is None:
            return
        size = payload_size(frame)
        if (watch := engine_stats.watch) is not None:
            watch.received(size)
        if size > conf.MAX_PAYLOAD:
            await self.close(DisconnectReason.TRANSPORT_ERROR, MESSAGE_TOO_BIG)
            return
        try:
            packet = engineio.decode(frame)
        except ProtocolError:
            await self.close(DisconnectReason.PARSE_ERROR, PROTOCOL_ERROR)
            return
        if packet.type is PacketType.MESSAGE:
            if not await self.outbox.frame(packet.data, size):
                logger.warning("session %s closed: over MAX_BUFFERED while its worker is behind", self.session_key)
                await self.close(DisconnectReason.TRANSPORT_ERROR, POLICY_VIOLATION)
        elif packet.type is PacketType.PONG:
            self.ping_sent_at = None
        elif packet.type is PacketType.CLOSE:
            await self.close(DisconnectReason.TRANSPORT_CLOSE, NORMAL_CLOSURE)
        else:
            await self.close(DisconnectReason.PARSE_ERROR, PROTOCOL_ERROR)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """The client went away: tell the worker, unless it already knows."""
        await self.end(DisconnectReason.TRANSPORT_CLOSE)
        raise StopConsumer

    async def sioless_frames(self, message: dict[str, Any]) -> None:
        """Frames the worker sends this client (with how far it has handled the client's, and the
        groups of a socket they connect), then the broadcasts held for a recovery it ends."""
        self.groups.update(message.get("groups", ()))
        if self.outbox is not None:
            await self.outbox.credit(message.get("handled"))
        if "ack" in message and not self.note_ack(message["ack"]) and message.get("again"):
            return  # a handler run again after its worker died: the client had its ack
        await self.send_messages(message["frames"])
        if "release" in message:
            log, offset = message["release"]
            await self.release(log, offset)
        if "drop_held" in message:  # a recovery refused: what it held is not for this client
            self.holding.pop(message["drop_held"], None)

    async def sioless_credit(self, message: dict[str, Any]) -> None:
        """The worker handled the client's frames up to ``handled``, or (revived) asks how many were
        sent; a ``probe`` is answered only while the client is there."""
        if self.outbox is None or self.closing:
            return
        if message.get("resync"):
            if not message.get("probe") or self.client_present():
                await self.outbox.resync()
        else:
            await self.outbox.credit(message["handled"])

    def note_ack(self, ack: tuple[str, int] | list[Any]) -> bool:
        """Note the ack of the client's event ``ack`` (its socket's sid and ack id); whether it is new."""
        if self.acks_sent is None:
            self.acks_sent = _SentAcks()
        return self.acks_sent.note((ack[0], ack[1]))

    def client_present(self) -> bool:
        """Whether the client is there, as far as this consumer knows (a WebSocket's is, until it closes)."""
        return True

    @property
    def polling(self) -> bool:
        """Whether the client is on HTTP long-polling now."""
        return False

    async def sioless_broadcast(self, message: dict[str, Any]) -> None:
        """Frames sent to a group: delivered once, unless a skipped room holds this client; held
        while a socket of its namespace is recovered."""
        if self.groups.isdisjoint(message["skip"]) and self.first_through(message):
            held = self.holding.get(message.get("log", ""))
            if held is None:
                await self.send_messages(message["frames"])
            elif not held.hold(message):
                await self.release(held.log, None)

    async def release(self, log: str, offset: str | None) -> None:
        """Send the broadcasts held for ``log`` past ``offset`` (those up to it were sent again with
        the missed events); all of them when ``offset`` is None."""
        held = self.holding.pop(log, None)
        if held is not None:
            for message in held.past(offset):
                await self.send_messages(message["frames"])

    def first_through(self, message: dict[str, Any]) -> bool:
        """Whether a message sent to several groups came through the first of them this client is
        in (``via``): it is taken once, however many of its groups hold the client."""
        targets, via = message["targets"], message["via"]
        return targets[via] in self.groups and self.groups.isdisjoint(targets[:via])

    async def sioless_groups(self, message: dict[str, Any]) -> None:
        """The worker changed this consumer's groups (and recovers a socket: ``hold``)."""
        self.groups.difference_update(message["discard"])
        self.groups.update(message["add"])
        if log := message.get("hold"):
            self.holding[log] = _HeldBroadcasts(log, time.monotonic())

    async def sioless_command(self, message: dict[str, Any]) -> None:
        """A command for one of this client's sockets, taken once (through the first of its target
        groups this client is in): the worker carries it out in order."""
        if self.outbox is not None and not self.closing and self.first_through(message):
            await self.outbox.control(dict(message))

    async def sioless_close(self, message: dict[str, Any]) -> None:
        """The worker ended the session: for a protocol error, or because it does not know it."""
        if not self.closing:
            self.closing = True
            self.ended_by_worker = DisconnectReason(message["reason"])
            logger.info("session %s closed by its worker: %s", self.session_key, message["reason"])
            await self.channel_layer.group_discard(HEARTBEAT_GROUP, self.channel_name)
            codes = {DisconnectReason.PARSE_ERROR: PROTOCOL_ERROR, DisconnectReason.FORCED_CLOSE: NORMAL_CLOSURE}
            code = codes.get(message["reason"], SERVER_ERROR)
            await self.send({"type": "websocket.close", "code": code})

    async def sioless_ping(self, message: dict[str, Any]) -> None:
        """A heartbeat tick: report the process alive, keep the groups, and ping the client
        unless the last ping awaits its answer (a client that let PING_TIMEOUT pass is closed).
        A tick less than half a ping interval after the session opened is skipped."""
        await self.report_alive(message)
        if self.closing:
            return
        now = time.monotonic()
        await self.keep_groups(now)  # at every tick: a ping unanswered for long must still be heard of
        for held in [held for held in self.holding.values() if now - held.since > HOLD_SECONDS]:
            await self.release(held.log, None)  # the worker that recovers the socket stopped
        if now - self.opened_at < conf.PING_INTERVAL / 2:
            return  # the first ping comes a ping interval after OPEN, give or take half of one
        if self.ping_sent_at is not None:
            if self.ping_overdue(now):
                await self.close(DisconnectReason.PING_TIMEOUT, NORMAL_CLOSURE)
            return
        self.ping_sent_at = now
        await self.send_frame(engineio.encode(engineio.Packet(PacketType.PING)))

    def ping_overdue(self, now: float | None = None) -> bool:
        """Whether the last ping went unanswered for more than PING_TIMEOUT."""
        sent = self.ping_sent_at
        return sent is not None and (time.monotonic() if now is None else now) - sent > conf.PING_TIMEOUT

    async def report_alive(self, tick: dict[str, Any]) -> None:
        """Tell the ticker this server process is alive, if no consumer of it has for this tick."""
        global _reported_tick
        if tick["tick"] != _reported_tick:
            _reported_tick = tick["tick"]
            report = {"type": messages.ALIVE, "process": process_of(self.channel_name)}
            try:
                await self.channel_layer.send(tick["reporter"], report)
            except ChannelFull:
                logger.warning("the heartbeat's ticker does not take reports: %s", tick["reporter"])

    async def keep_groups(self, now: float) -> None:
        """Add this consumer to its groups again before the channel layer's group expiry drops it."""
        expiry = getattr(self.channel_layer, "group_expiry", 86400)
        if now - self.groups_added_at > expiry / 2:
            self.groups_added_at = now
            await group_add_all(self.channel_layer, [HEARTBEAT_GROUP, *self.groups], self.channel_name)

    async def end(self, reason: DisconnectReason) -> None:
        """Stop serving the session and tell the worker why, once; the worker always gets to know."""
        if self.closing:
            return
        self.closing = True
        self.ended_by = reason
        if (watch := engine_stats.watch) is not None:
            watch.closed(str(reason))
        if self.outbox is not None:
            await self.outbox.finish({"type": messages.CLOSE, "reason": str(reason)})
        try:
            await self.channel_layer.group_discard(HEARTBEAT_GROUP, self.channel_name)
        except Exception:
            logger.exception("session %s: could not leave the heartbeat group", self.session_key)

    async def close(self, reason: DisconnectReason, code: int) -> None:
        """Close the connection from the server side."""
        logger.info("session %s closed: %s", self.session_key, reason)
        await self.end(reason)
        await self.send({"type": "websocket.close", "code": code})

    async def send_messages(self, frames: Iterable[str | bytes]) -> None:
        """Send Socket.IO frames, each as an Engine.IO MESSAGE."""
        for frame in frames:
            await self.send_message(frame)

    async def send_message(self, frame: str | bytes) -> None:
        """Send one Socket.IO frame as an Engine.IO MESSAGE."""
        await self.send_frame(engineio.encode_message(frame))

    async def send_frame(self, frame: str | bytes) -> None:
        """Send one WebSocket frame."""
        if (watch := engine_stats.watch) is not None:
            watch.sent(len(frame))
        await self.send(send_event(frame))


def payload_size(frame: str | bytes) -> int:
    """Bytes a frame took on the wire; text is encoded only when it might be too large."""
    if isinstance(frame, bytes) or len(frame) * 4 <= conf.MAX_PAYLOAD:
        return len(frame)
    return len(frame.encode("utf-8", "surrogatepass"))


class _SentAcks:
    """The latest ``ACKS_REMEMBERED`` acks a client was sent, by socket sid and ack id."""

    def __init__(self) -> None:
        #: The acks, oldest first (a dict keeps its keys in the order they came).
        self.sent: dict[tuple[str, int], None] = {}

    def note(self, ack: tuple[str, int]) -> bool:
        """Note an ack; whether it is new."""
        if ack in self.sent:
            return False
        self.sent[ack] = None
        if len(self.sent) > ACKS_REMEMBERED:
            del self.sent[next(iter(self.sent))]
        return True


@dataclass
class _HeldBroadcasts:
    """The broadcasts of a namespace's packet log that reach a connection while one of its sockets
    is recovered: sent after the events the socket missed, less those among them."""

    log: str
    since: float
    messages: list[dict[str, Any]] = field(default_factory=list)

    def hold(self, message: dict[str, Any]) -> bool:
        """Hold a broadcast; False when HOLD_LIMIT is reached (it is not held)."""
        if len(self.messages) >= HOLD_LIMIT:
            return False
        self.messages.append(message)
        return True

    def past(self, offset: str | None) -> list[dict[str, Any]]:
        """The broadcasts held whose offset is past ``offset`` (all of them for None)."""
        if offset is None:
            return self.messages
        after = offset_key(offset)
        return [message for message in self.messages if offset_key(message["offset"]) > after]
