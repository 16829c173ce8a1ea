"""Engine.IO v4 packets, over WebSocket and in HTTP long-polling payloads.

Wire format over WebSocket (one packet per frame)::

    text frame:   <type digit>[<utf-8 data>]     e.g. "2" (ping), "4hello" (message)
    binary frame: <raw bytes>                     always a MESSAGE packet in v4

A long-polling payload (an HTTP body) holds several packets: the text frames as they are,
binary messages as ``b<base64>``, separated by the record separator ``\x1e``::

    4hello\x1e2\x1ebAQID

Types: 0 open, 1 close, 2 ping, 3 pong, 4 message, 5 upgrade, 6 noop. The open
packet carries the handshake as JSON::

    0{"sid":"...","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from ..exceptions import ProtocolError

Frame = str | bytes

RECORD_SEPARATOR = "\x1e"


class PacketType(IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class HandshakeError(IntEnum):
    """The Engine.IO error codes of a refused HTTP request."""

    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5


HANDSHAKE_ERROR_MESSAGES = {
    HandshakeError.UNKNOWN_TRANSPORT: "Transport unknown",
    HandshakeError.UNKNOWN_SID: "Session ID unknown",
    HandshakeError.BAD_HANDSHAKE_METHOD: "Bad handshake method",
    HandshakeError.BAD_REQUEST: "Bad request",
    HandshakeError.FORBIDDEN: "Forbidden",
    HandshakeError.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


@dataclass(frozen=True)
class Packet:
    """One Engine.IO packet; ``data`` is bytes only for binary messages."""

    type: PacketType
    data: str | bytes = ""


def encode(packet: Packet) -> Frame:
    """Encode a packet as one WebSocket frame."""
    if packet.type is PacketType.MESSAGE:
        return encode_message(packet.data)
    if isinstance(packet.data, bytes):
        raise ValueError("only MESSAGE packets carry binary data")
    return f"{packet.type.value}{packet.data}"


_MESSAGE = str(PacketType.MESSAGE.value)


def encode_message(data: str | bytes) -> Frame:
    """Encode a MESSAGE packet carrying ``data`` as one WebSocket frame (what :func:`encode` makes
    of it, without a packet made for every frame a server sends)."""
    return data if isinstance(data, bytes) else f"{_MESSAGE}{data}"


def decode(frame: Frame) -> Packet:
    """Decode one WebSocket frame; raise ProtocolError when it is not a packet."""
    if isinstance(frame, bytes):
        return Packet(PacketType.MESSAGE, frame)
    if not frame or not "0" <= frame[0] <= "6":
        raise ProtocolError(f"unknown Engine.IO packet type in {frame[:16]!r}")
    return Packet(PacketType(int(frame[0])), frame[1:])


def encode_payload(frames: Iterable[Frame]) -> str:
    """Encode frames (as :func:`encode` makes them) as one long-polling payload."""
    return RECORD_SEPARATOR.join(
        f"b{base64.b64encode(frame).decode('ascii')}" if isinstance(frame, bytes) else frame for frame in frames
    )


def decode_payload(payload: str) -> list[Frame]:
    """Split a long-polling payload into frames :func:`decode` takes; raise ProtocolError when a
    part is not a packet."""
    frames: list[Frame] = []
    for part in payload.split(RECORD_SEPARATOR):
        if part.startswith("b"):
            try:
                frames.append(base64.b64decode(part[1:], validate=True))
            except (binascii.Error, ValueError):  # ValueError: not ASCII
                raise ProtocolError(f"invalid base64 in binary packet {part[:16]!r}") from None
        else:
            decode(part)
            frames.append(part)
    return frames


def open_packet(sid: str, *, ping_interval_ms: int, ping_timeout_ms: int, max_payload: int, upgrades: list[str]) -> str:
    """The OPEN frame that starts a session."""
    handshake = {
        "sid": sid,
        "upgrades": upgrades,
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    }
    return f"{PacketType.OPEN.value}{json.dumps(handshake, separators=(',', ':'))}"


def handshake_error_body(code: HandshakeError) -> bytes:
    """The JSON body of an HTTP 400 refusing a request, as Engine.IO servers send it."""
    body = {"code": code.value, "message": HANDSHAKE_ERROR_MESSAGES[code]}
    return json.dumps(body, separators=(",", ":")).encode()
