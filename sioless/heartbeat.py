"""The Engine.IO heartbeat: one tick a ping interval, sent to every consumer at once.

A consumer answers a tick by checking that its previous ping was answered
(else it closes with "ping timeout") and sending a new ping.
"""

from __future__ import annotations

import asyncio

from channels.layers import BaseChannelLayer

from . import messages
from .conf import conf
from .names import HEARTBEAT_GROUP


async def tick(layer: BaseChannelLayer) -> None:
    """Ask every consumer to ping its client."""
    await layer.group_send(HEARTBEAT_GROUP, {"type": messages.PING})


async def tick_forever(layer: BaseChannelLayer) -> None:
    """Tick every ``PING_INTERVAL`` seconds until cancelled."""
    while True:
        await asyncio.sleep(conf.PING_INTERVAL)
        await tick(layer)
