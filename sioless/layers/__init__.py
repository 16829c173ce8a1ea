"""sioless' channel layers, and helpers that work on any channel layer.

- :class:`RedisChannelLayer` (:mod:`.redis_layer`): channels-redis with fewer round trips, durable
  worker channels, one reader a process (its reads of Redis in :mod:`.reads`, its Lua scripts in
  :mod:`.scripts`, a consumer's buffer in :mod:`.inbox`);
- :class:`InMemoryChannelLayer` (:mod:`.memory`): Channels' in-memory layer for development, lean
  at every message (its copies: :mod:`.copying`).

Settings name them ``sioless.layers.RedisChannelLayer`` and ``sioless.layers.InMemoryChannelLayer``.
"""

from __future__ import annotations

from typing import Any

from .memory import InMemoryChannelLayer
from .redis_layer import TAKE_BATCH, RedisChannelLayer

__all__ = [
    "TAKE_BATCH",
    "InMemoryChannelLayer",
    "RedisChannelLayer",
    "group_add_all",
    "group_discard_all",
    "receive_batch",
]


async def group_add_all(layer: Any, groups: list[str], channel: str) -> None:
    """Add ``channel`` to ``groups`` of any channel layer (sioless' Redis layer: at once)."""
    if isinstance(layer, RedisChannelLayer):
        await layer.group_add_all(groups, channel)
    else:
        for group in groups:
            await layer.group_add(group, channel)


async def group_discard_all(layer: Any, groups: list[str], channel: str) -> None:
    """Take ``channel`` out of ``groups`` of any channel layer (sioless' Redis layer: at once)."""
    if isinstance(layer, RedisChannelLayer):
        await layer.group_discard_all(groups, channel)
    else:
        for group in groups:
            await layer.group_discard(group, channel)


async def receive_batch(layer: Any, channel: str, limit: int) -> list[dict[str, Any]]:
    """The next message of ``channel`` on any channel layer, with those waiting behind it up to
    ``limit`` in all where the layer can take them at once (sioless' in-memory layer)."""
    if isinstance(layer, InMemoryChannelLayer):
        return await layer.receive_batch(channel, limit)
    return [await layer.receive(channel)]
