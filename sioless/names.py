"""Channel and group names.

Namespaces and rooms are client-controlled strings; channel layers accept only
``^[a-zA-Z0-9\\-_.]+$`` under 100 characters. They are therefore hashed, never
used raw.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from typing import Any

from .conf import conf

HEARTBEAT_GROUP = "sioless.heartbeat"
#: What a socket's sid looks like (``secrets.token_urlsafe(15)``): a room name that could be one.
SID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,40}")


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


def room_name(room: Any) -> str:
    """``room``, checked: a string of at most ``MAX_NAME_LENGTH`` characters (any characters)."""
    if not isinstance(room, str):
        raise TypeError(f"room names are strings, not {type(room).__name__}")
    if len(room) > conf.MAX_NAME_LENGTH:
        raise ValueError(f"room name of {len(room)} characters: SIOLESS['MAX_NAME_LENGTH'] is {conf.MAX_NAME_LENGTH}")
    return room


def room_group(namespace: str, room: str) -> str:
    """The group of the sockets in ``room`` of ``namespace`` (a socket's sid is a room too)."""
    return f"sioless.room.{_digest(namespace, room)}"
