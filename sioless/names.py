"""Channel and group names.

Namespaces and rooms are client-controlled strings; channel layers accept only
``^[a-zA-Z0-9\\-_.]+$`` under 100 characters. They are therefore hashed, never
used raw.
"""

from __future__ import annotations

import hashlib
import zlib

HEARTBEAT_GROUP = "sioless.heartbeat"


def shard_of(eio_sid: str, shards: int) -> int:
    """The shard serving an engine session: stable across processes."""
    return zlib.crc32(eio_sid.encode()) % shards


def process_of(reply_channel: str) -> str:
    """The server process a consumer's channel belongs to: its name before ``!`` (Channels'
    process-specific channels), the whole name when it has none."""
    return reply_channel.partition("!")[0]


def worker_channel(shard: int) -> str:
    """The channel a shard's worker reads."""
    return f"sioless.worker.{shard}"


def _digest(*parts: str) -> str:
    joined = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=16).hexdigest()


def namespace_group(namespace: str) -> str:
    """The group of every socket connected to ``namespace``."""
    return f"sioless.ns.{_digest(namespace)}"


def room_group(namespace: str, room: str) -> str:
    """The group of the sockets in ``room`` of ``namespace`` (a socket's sid is a room too)."""
    return f"sioless.room.{_digest(namespace, room)}"
