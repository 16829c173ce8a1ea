"""What connection state recovery keeps: the events sent to sockets, each at an offset of its
namespace's packet log, for as long as a lost socket may be recovered (:func:`kept_for`).

A socket whose connection is lost for a reason in :data:`RECOVERABLE` is suspended, not ended: its
client reconnects with the ``pid`` its CONNECT packet gave it and the offset of the last event it
got (socket.io puts the offset after an event's arguments), and becomes the same socket again,
sent what the log holds for it after that offset. The log keeps events only: not acks, not events
that ask for an ack (as socket.io's own log). Production keeps it in a Redis stream per namespace
(one script an event: the entry, trimmed by age in the same call), development in the memory of
the server process.

Offsets are ``<ms>-<n>``: when the event was logged, and its place. The log holds every event
since its *horizon* (:meth:`PacketLog.horizon`); an offset older than that (its client got nothing
for a while: a quiet namespace) recovers everything the log holds, since what was trimmed had been
sent before the connection was lost. (socket.io's own log starts such a client afresh.)
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import contextlib
import hashlib
import re
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from channels.layers import BaseChannelLayer

from .conf import conf
from .layers import InMemoryChannelLayer
from .layers.scripts import run_script
from .names import namespace_group
from .protocol.engineio import Frame
from .reasons import DisconnectReason

#: The reasons a socket is lost for that leave it recoverable (socket.io's list): not a
#: disconnect the client or the server asked for, not a protocol error.
RECOVERABLE = frozenset(
    {
        DisconnectReason.TRANSPORT_CLOSE,
        DisconnectReason.TRANSPORT_ERROR,
        DisconnectReason.PING_TIMEOUT,
        DisconnectReason.FORCED_CLOSE,
        DisconnectReason.SERVER_SHUTTING_DOWN,
    }
)
#: Most events one recovery sends again, and most it reads (its rooms' and others'): a socket that
#: missed more, or whose namespace sent more meanwhile, starts afresh.
MAX_MISSED = 10_000
MAX_READ = 10 * MAX_MISSED
#: What an offset looks like (a Redis stream id; development's log counts the same way).
OFFSET_SHAPE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
#: The largest part of an offset: a Redis stream id is two unsigned 64-bit numbers.
MAX_OFFSET_PART = 2**64 - 1


def kept_for() -> float:
    """Seconds the log keeps an event: as long as a lost socket can be recovered, plus the time its
    loss may take to be noticed (a ping timeout, or two heartbeat ticks for a dead server process)."""
    return conf.MAX_DISCONNECTION_DURATION + 2 * (conf.PING_INTERVAL + conf.PING_TIMEOUT)


def digest(pid: str) -> str:
    """What the database keeps of a pid: the pid is a bearer token, the digest finds it."""
    return hashlib.sha256(pid.encode("utf-8", "surrogatepass")).hexdigest()


def offset_key(offset: str) -> tuple[int, int]:
    """An offset in the order of its log."""
    left, _, right = offset.partition("-")
    return int(left), int(right)


@dataclass(frozen=True)
class Entry:
    """An event in the log: its frames (without the offset), the groups it was sent to and skipped."""

    offset: str
    frames: list[Frame]
    targets: list[str]
    skip: list[str]

    def reaches(self, joined: Mapping[str, int]) -> bool:
        """Whether a socket was sent this event: ``joined`` holds the groups it is in, each with
        when it came in (ms since the epoch); it was in a group for the entries logged since."""
        logged = offset_key(self.offset)[0]

        def was_in(group: str) -> bool:
            since = joined.get(group)
            return since is not None and since <= logged

        return any(map(was_in, self.targets)) and not any(map(was_in, self.skip))

    def sent_frames(self) -> list[Frame]:
        """The frames as the clients got them, offset included."""
        return conf.PARSER.with_offset(self.frames, self.offset)


class PacketLog(abc.ABC):
    """The events sent in each namespace, in order, for ``MAX_DISCONNECTION_DURATION`` seconds."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def ordered(self) -> asyncio.Lock:
        """Held from an event's entry in the log until it is sent, so that the events of this process
        reach clients in the order of the log (a client's offset says what it got before)."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    @abc.abstractmethod
    async def append(self, namespace: str, frames: list[Frame], targets: list[str], skip: list[str]) -> str:
        """Log an event; its offset."""

    @abc.abstractmethod
    async def knows(self, namespace: str, offset: str) -> bool:
        """Whether ``offset`` is in the namespace's log."""

    def horizon(self) -> int:
        """Since when (ms) the log holds every event."""
        return int((time.time() - kept_for()) * 1000)

    async def recovers(self, namespace: str, offset: str) -> bool:
        """Whether what a socket missed after ``offset`` is known: the log holds it, or it is older
        than the horizon. A made-up offset is not."""
        if not OFFSET_SHAPE.fullmatch(offset) or max(offset_key(offset)) > MAX_OFFSET_PART:
            return False
        return offset_key(offset)[0] < self.horizon() or await self.knows(namespace, offset)

    @abc.abstractmethod
    async def after(self, namespace: str, offset: str) -> AsyncIterator[list[Entry]]:
        """The entries after ``offset``, in batches."""
        yield []

    async def missed(
        self, namespace: str, offset: str, joined: Mapping[str, int], *, bounded: bool = True
    ) -> tuple[list[Entry], str] | None:
        """What a socket in groups ``joined`` (:meth:`Entry.reaches`) was sent after ``offset`` (one
        :meth:`recovers`), and the last offset read; None when that is more than MAX_MISSED events,
        or takes reading more than MAX_READ (unless not ``bounded``)."""
        found: list[Entry] = []
        last = offset
        read = 0
        async for batch in self.after(namespace, offset):
            read += len(batch)
            found += [entry for entry in batch if entry.reaches(joined)]
            if bounded and (len(found) > MAX_MISSED or read > MAX_READ):
                return None
            last = batch[-1].offset if batch else last
        return found, last


class MemoryPacketLog(PacketLog):
    """The log of development's one process. It starts with the process: an offset a previous
    process of the development server gave is older than its horizon, and recovers what this one
    has sent since it started (what that process sent in its last moment is gone with it)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = int(time.time() * 1000)
        self.count = 0
        self.entries: dict[str, list[tuple[int, int, Entry]]] = {}

    def horizon(self) -> int:
        return max(self.started, super().horizon())

    async def append(self, namespace: str, frames: list[Frame], targets: list[str], skip: list[str]) -> str:
        self.count += 1
        now = int(time.time() * 1000)
        offset = f"{now}-{self.count}"
        log = self.entries.setdefault(namespace_group(namespace), [])
        log.append((now, self.count, Entry(offset, frames, targets, skip)))
        if log[0][0] < (horizon := self.horizon()):
            del log[: bisect.bisect_left(log, horizon, key=lambda kept: kept[0])]
        return offset

    async def knows(self, namespace: str, offset: str) -> bool:
        log = self.entries.get(namespace_group(namespace), [])
        key = offset_key(offset)
        at = bisect.bisect_left(log, key, key=_order)
        return at < len(log) and _order(log[at]) == key

    async def after(self, namespace: str, offset: str) -> AsyncIterator[list[Entry]]:
        log = self.entries.get(namespace_group(namespace), [])
        yield [entry for _, _, entry in log[bisect.bisect_right(log, offset_key(offset), key=_order) :]]


def _order(kept: tuple[int, int, Entry]) -> tuple[int, int]:
    """Where an entry of development's log stands: its offset's order."""
    return kept[0], kept[1]


#: KEYS: the namespace's stream; ARGV: the entry, the oldest id kept (ms), the stream's expiry (ms).
APPEND_SCRIPT = """
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return id
"""
#: Entries read from Redis at a time.
READ_BATCH = 1000


class RedisPacketLog(PacketLog):
    """A Redis stream per namespace (on the host its name hashes to); offsets are stream ids."""

    def __init__(self, layer: Any) -> None:
        super().__init__()
        self.layer = layer

    def _stream(self, namespace: str) -> tuple[Any, str]:
        group = namespace_group(namespace)
        return self.layer.connection(self.layer.consistent_hash(group)), f"{self.layer.prefix}:log:{group}"

    async def append(self, namespace: str, frames: list[Frame], targets: list[str], skip: list[str]) -> str:
        connection, key = self._stream(namespace)
        entry = self.layer.serialize({"frames": frames, "targets": targets, "skip": skip})
        kept_ms = int(kept_for() * 1000)
        offset = await run_script(connection, APPEND_SCRIPT, [key], entry, self.horizon(), kept_ms)
        return offset.decode() if isinstance(offset, bytes) else str(offset)

    async def knows(self, namespace: str, offset: str) -> bool:
        connection, key = self._stream(namespace)
        return bool(await connection.xrange(key, offset, offset, count=1))

    async def after(self, namespace: str, offset: str) -> AsyncIterator[list[Entry]]:
        connection, key = self._stream(namespace)
        while True:
            read = await connection.xrange(key, f"({offset}", "+", count=READ_BATCH)
            batch = [self._entry(stream_id, fields) for stream_id, fields in read]
            yield batch
            if len(read) < READ_BATCH:
                return
            offset = batch[-1].offset

    def _entry(self, stream_id: bytes, fields: dict[bytes, bytes]) -> Entry:
        kept = self.layer.deserialize(fields[b"e"])
        return Entry(stream_id.decode(), kept["frames"], kept["targets"], kept["skip"])


_logs: weakref.WeakKeyDictionary[BaseChannelLayer, PacketLog] = weakref.WeakKeyDictionary()


def packet_log(layer: BaseChannelLayer) -> PacketLog:
    """The packet log kept beside a channel layer (sioless' layers only: see check E008)."""
    log = _logs.get(layer)
    if log is None:
        log = _logs[layer] = MemoryPacketLog() if isinstance(layer, InMemoryChannelLayer) else RedisPacketLog(layer)
    return log


@contextlib.asynccontextmanager
async def logged(
    layer: BaseChannelLayer, namespace: str, frames: list[Frame], targets: list[str], skip: list[str]
) -> AsyncIterator[tuple[list[Frame], str | None]]:
    """With recovery on: the event's frames with their offset, and the offset, to be sent inside the
    block (the log's order is kept meanwhile); with it off, the frames as they are, and None."""
    if not conf.CONNECTION_STATE_RECOVERY:
        yield frames, None
        return
    log = packet_log(layer)
    async with log.ordered():
        offset = await log.append(namespace, frames, targets, skip)
        yield conf.PARSER.with_offset(frames, offset), offset
