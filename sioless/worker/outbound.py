"""Everything the worker sends on the channel layer: frames to clients, control messages to
consumers and other workers, group changes. No other part of the worker sends."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from .. import messages
from ..layers import group_add_all, group_discard_all
from ..names import HEARTBEAT_GROUP
from ..protocol.engineio import Frame
from ..reasons import DisconnectReason
from ..socket import Socket
from .connections import Connection, Connections, connection_of

logger = logging.getLogger(__name__)


class Outbound:
    """Sends to consumers and groups through ``layer``; a connection whose client cannot take its
    frames is given to ``drop``."""

    def __init__(
        self, layer: BaseChannelLayer, connections: Connections, drop: Callable[[Connection], Awaitable[None]]
    ) -> None:
        self.layer = layer
        self.connections = connections
        self._drop = drop

    async def send(self, channel: str, message: dict[str, Any]) -> bool:
        """Send a message; False when the channel is full (its client is to be dropped)."""
        try:
            await self.layer.send(channel, message)
        except ChannelFull:
            logger.warning("channel %s is full: its client is dropped", channel)
            return False
        return True

    async def frames(
        self,
        conn: Connection,
        frames: list[Frame],
        *,
        handled: int = 0,
        release: list[str] | None = None,
        drop_held: str | None = None,
        groups: list[str] | None = None,
        ack: tuple[str, int] | None = None,
        again: bool = False,
    ) -> None:
        """Send Socket.IO frames to one client, with how far its own frames are handled (counting
        ``handled`` more that are done), the ``groups`` whose broadcasts its consumer takes from
        now on, and the broadcasts held for a recovery to ``release`` after them (or to drop: the
        log of a recovery refused). ``ack``: the socket sid and ack id of the client's event they
        acknowledge, ``again`` when that event was handled again (its worker died): its consumer
        does not send an ack the client already has. A closed
        connection is sent nothing; one whose client cannot take them is dropped."""
        if not self.connections.serves(conn):
            return
        conn.credited = max(conn.credited, conn.handled + handled)
        message: dict[str, Any] = {"type": messages.FRAMES, "frames": frames, "handled": conn.credited}
        if release is not None:
            message["release"] = release
        if drop_held is not None:
            message["drop_held"] = drop_held
        if groups is not None:
            message["groups"] = groups
        if ack is not None:
            message["ack"] = ack
            if again:
                message["again"] = True
        if not await self.send(conn.reply, message):
            await self._drop(conn)

    async def credit(self, conn: Connection) -> None:
        """Tell the consumer how far its client's frames are handled."""
        if self.connections.serves(conn):
            conn.credited = conn.handled
            await self.send(conn.reply, {"type": messages.CREDIT, "handled": conn.handled})

    async def resync(self, conn: Connection, *, probe: bool = False) -> None:
        """Ask the consumer how many frames it sent (and, for a ``probe``, only if its client is there)."""
        message: dict[str, Any] = {"type": messages.CREDIT, "resync": True}
        if probe:
            message["probe"] = True
        await self.send(conn.reply, message)

    async def close(self, reply: str, reason: DisconnectReason) -> None:
        """Tell a consumer to close its connection."""
        await self.send(reply, {"type": messages.CLOSE, "reason": str(reason)})

    async def add_groups(self, socket: Socket, groups: list[str]) -> None:
        """Add the socket's consumer to ``groups``; a socket still connecting learns of them at CONNECT."""
        reply = connection_of(socket).reply
        if not reply:
            return  # an expired socket, in its disconnect handler: it has no consumer
        await group_add_all(self.layer, groups, reply)
        if socket.sent_before_connect is None:
            await self.send(reply, {"type": messages.GROUPS, "add": groups, "discard": []})

    async def discard_groups(self, socket: Socket, groups: list[str], *, tell_client: bool) -> None:
        """Take the socket's consumer out of ``groups``; ``tell_client``: it stops taking their broadcasts now."""
        reply = connection_of(socket).reply
        if not reply:
            return
        await group_discard_all(self.layer, groups, reply)
        if tell_client:
            await self.send(reply, {"type": messages.GROUPS, "add": [], "discard": groups})

    async def hold_for_recovery(self, conn: Connection, groups: list[str], log: str) -> None:
        """Add a recovering socket's consumer to ``groups``, holding their broadcasts until the
        events it missed (from the packet log ``log``) are sent."""
        await group_add_all(self.layer, groups, conn.reply)
        await self.send(conn.reply, {"type": messages.GROUPS, "add": groups, "discard": [], "hold": log})

    async def rejoin(self, conn: Connection, groups: list[str]) -> None:
        """Put a consumer in the heartbeat's group and ``groups`` again (Redis lost them)."""
        await group_add_all(self.layer, [HEARTBEAT_GROUP, *groups], conn.reply)

    async def leave_heartbeat(self, conn: Connection) -> None:
        """Take a reaped connection's consumer out of the heartbeat's group."""
        await self.layer.group_discard(HEARTBEAT_GROUP, conn.reply)
