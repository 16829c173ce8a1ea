"""Socket.IO v5 packets, carried in Engine.IO MESSAGE packets.

Wire format of the text part::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]

    type         0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR,
                 5 BINARY_EVENT, 6 BINARY_ACK
    attachments  binary types only: how many binary frames follow the text
    namespace    omitted for "/"; otherwise starts with "/" and ends at ","
    ack id       decimal digits
    data         CONNECT: object (auth / {"sid": ...}); EVENT: [name, *args];
                 ACK: [*args]; CONNECT_ERROR: {"message": ..., "data": ...}

Examples::

    0/admin,{"token":"x"}          connect to /admin with auth
    2["chat","hi"]                 event "chat" on "/"
    212["chat","hi"]               the same, asking for ack 12
    31["ok"]                       ack 1 on "/"
    51-["upload",{"_placeholder":true,"num":0}]   + one binary frame

Binary values (bytes) travel as frames after the text; in the JSON they are
replaced by ``{"_placeholder": true, "num": <index>}``.

What is not JSON is refused both ways: ``NaN``, ``Infinity`` and numbers out of a
double's range (``1e999``) in what a client sends are a protocol error, and
encoding one raises :class:`~sioless.exceptions.PayloadError`, since every
socket.io client would fail to parse it. Data nested deeper than ``MAX_DEPTH``
levels is a protocol error too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from ..exceptions import PayloadError, ProtocolError

MAX_ACK_ID = 2**53 - 1
DEFAULT_MAX_ATTACHMENTS = 10
#: Deepest nesting of lists and objects a packet's data may have (the data's own list is level 1).
MAX_DEPTH = 32


class EventEncoding(Protocol):
    """A parser's ``encode_event(namespace, event, args, ack_id=None, encoder=None)``."""

    def __call__(
        self,
        namespace: str,
        event: str,
        args: list[Any],
        ack_id: int | None = None,
        encoder: type[json.JSONEncoder] | None = None,
    ) -> list[str | bytes]: ...


class PacketType(IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


BINARY_TYPES = frozenset({PacketType.BINARY_EVENT, PacketType.BINARY_ACK})


@dataclass(frozen=True)
class Packet:
    """One Socket.IO packet with its binary values in place."""

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None


@dataclass(frozen=True)
class PartialPacket:
    """A decoded text part of a binary packet still waiting for its attachments."""

    packet: Packet
    attachment_count: int
    attachments: tuple[bytes, ...] = field(default=())

    def add(self, attachment: bytes) -> PartialPacket | Packet:
        """Add the next binary frame; the whole packet once all have arrived."""
        attachments = (*self.attachments, attachment)
        if len(attachments) < self.attachment_count:
            return PartialPacket(self.packet, self.attachment_count, attachments)
        data = _fill_placeholders(self.packet.data, attachments)
        return Packet(self.packet.type, self.packet.namespace, data, self.packet.id)


def encode(packet: Packet, encoder: type[json.JSONEncoder] | None = None) -> list[str | bytes]:
    """Encode a packet as its text frame followed by its binary attachments.

    EVENT and ACK packets whose data holds bytes become BINARY_EVENT/BINARY_ACK. ``encoder``
    (a ``json.JSONEncoder`` subclass) gives a JSON form to values ``json`` has none for.
    """
    attachments: list[bytes] = []
    data = _take_binary(packet.data, attachments) if packet.data is not None else None
    packet_type = packet.type
    if attachments and packet_type in (PacketType.EVENT, PacketType.ACK):
        packet_type = PacketType(packet_type + 3)
    parts = [str(packet_type.value)]
    if attachments:
        parts.append(f"{len(attachments)}-")
    if packet.namespace != "/":
        parts.append(f"{packet.namespace},")
    if packet.id is not None:
        parts.append(str(packet.id))
    if data is not None:
        try:
            parts.append(json.dumps(data, separators=(",", ":"), allow_nan=False, cls=encoder))
        except (ValueError, TypeError, RecursionError) as exc:
            raise PayloadError(f"{packet_type.name} data is not JSON: {exc}") from None
    return ["".join(parts), *attachments]


def event_encoding(encode: Callable[[Packet, type[json.JSONEncoder] | None], list[str | bytes]]) -> EventEncoding:
    """A parser's ``encode_event``, made of its ``encode``."""

    def encode_event(
        namespace: str,
        event: str,
        args: list[Any],
        ack_id: int | None = None,
        encoder: type[json.JSONEncoder] | None = None,
    ) -> list[str | bytes]:
        """Encode an EVENT packet; PayloadError names the event when its data cannot be sent."""
        try:
            return encode(Packet(PacketType.EVENT, namespace, [event, *args], ack_id), encoder)
        except PayloadError as exc:
            raise PayloadError(f"event {event!r} cannot be sent: {exc}") from None

    return encode_event


#: Encode an EVENT (BINARY_EVENT) packet; PayloadError names the event when its data is not JSON.
encode_event = event_encoding(encode)


def with_ack_id(frames: list[str | bytes], namespace: str, ack_id: int) -> list[str | bytes]:
    """The frames of an encoded packet that has no ack id, asking for ack ``ack_id``: an event
    encoded once and sent to several clients, each with an id of its own."""
    text, *attachments = frames
    assert isinstance(text, str)  # encode() puts the text part first
    head = text.index("-") + 1 if PacketType(int(text[0])) in BINARY_TYPES else 1  # past "<type>[<attachments>-]"
    if namespace != "/":
        head += len(namespace) + 1
    return [f"{text[:head]}{ack_id}{text[head:]}", *attachments]


def with_offset(frames: list[str | bytes], offset: str) -> list[str | bytes]:
    """The frames of an encoded event with ``offset`` added as its last argument, where a client
    using connection state recovery reads its place in the packet log."""
    text, *attachments = frames
    assert isinstance(text, str) and text.endswith("]")  # an event's data is a list, last in the text part
    return [f"{text[:-1]},{json.dumps(offset)}]", *attachments]


def decode(text: str | bytes, *, max_attachments: int = DEFAULT_MAX_ATTACHMENTS) -> Packet | PartialPacket:
    """Decode a text part; a PartialPacket when binary attachments must follow.

    Raises ProtocolError for anything that is not a well-formed packet (a binary frame is only
    ever an attachment, which :meth:`PartialPacket.add` takes).
    """
    if isinstance(text, bytes):
        raise ProtocolError("binary frame without a binary packet announcing it")
    if not text or not "0" <= text[0] <= "6":
        raise ProtocolError(f"unknown Socket.IO packet type in {text[:16]!r}")
    packet_type = PacketType(int(text[0]))
    pos = 1
    attachment_count = 0
    if packet_type in BINARY_TYPES:
        dash = text.find("-", pos)
        digits = text[pos:dash] if dash > 0 else ""
        if not digits.isascii() or not digits.isdigit() or len(digits) > 6:
            raise ProtocolError("binary packet without a valid attachment count")
        attachment_count = int(digits)
        if not 1 <= attachment_count <= max_attachments:
            raise ProtocolError(f"attachment count {attachment_count} out of range")
        pos = dash + 1
    namespace = "/"
    if text.startswith("/", pos):
        comma = text.find(",", pos)
        end = len(text) if comma < 0 else comma
        namespace = text[pos:end]
        pos = end + 1
    ack_id = None
    digits_end = pos
    while digits_end < len(text) and "0" <= text[digits_end] <= "9":
        digits_end += 1
    if digits_end > pos:
        if digits_end - pos > 16 or int(text[pos:digits_end]) > MAX_ACK_ID:
            raise ProtocolError("ack id out of range")
        ack_id = int(text[pos:digits_end])
        pos = digits_end
    data = _load_json(text[pos:]) if pos < len(text) else None
    if data is not None and text.count("[", pos) + text.count("{", pos) > MAX_DEPTH and _too_deep(data):
        raise ProtocolError(f"data nested deeper than {MAX_DEPTH} levels")
    packet = Packet(packet_type, namespace, data, ack_id)
    validate(packet)
    if attachment_count:
        return PartialPacket(packet, attachment_count)
    return packet


def validate(packet: Packet) -> None:
    """ProtocolError for a packet whose data or ack id does not fit its type."""
    kind, data, ack_id = packet.type, packet.data, packet.id
    if kind in (PacketType.CONNECT, PacketType.DISCONNECT, PacketType.CONNECT_ERROR) and ack_id is not None:
        raise ProtocolError(f"{kind.name} packets carry no ack id")
    if kind is PacketType.CONNECT and data is not None and not isinstance(data, dict):
        raise ProtocolError("CONNECT data must be an object")
    if kind is PacketType.DISCONNECT and data is not None:
        raise ProtocolError("DISCONNECT packets carry no data")
    if kind is PacketType.CONNECT_ERROR and not isinstance(data, (dict, str)):
        raise ProtocolError("CONNECT_ERROR data must be an object or a string")
    is_event = kind in (PacketType.EVENT, PacketType.BINARY_EVENT)
    if is_event and not (isinstance(data, list) and data and isinstance(data[0], str)):
        raise ProtocolError("EVENT data must be a list starting with the event name")
    is_ack = kind in (PacketType.ACK, PacketType.BINARY_ACK)
    if is_ack and (ack_id is None or not isinstance(data, list)):
        raise ProtocolError("ACK packets need an ack id and a list of arguments")


def _reject_constant(name: str) -> None:
    raise ProtocolError(f"{name} is not JSON")


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise ProtocolError(f"{number[:16]} is out of range")
    return value


#: The decoder of every packet's JSON (``json.loads`` with options would make one a call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)


def _load_json(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"invalid JSON data: {exc}") from None


def _too_deep(data: Any) -> bool:
    """Whether ``data`` nests lists and objects deeper than MAX_DEPTH."""
    stack = [(data, 1)] if isinstance(data, (list, dict)) else []
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return False


def _take_binary(data: Any, attachments: list[bytes]) -> Any:
    """A copy of ``data`` with bytes swapped for placeholders, appended to ``attachments``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        attachments.append(bytes(data))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(data, (list, tuple)):
        return [_take_binary(item, attachments) for item in data]
    if isinstance(data, dict):
        return {key: _take_binary(value, attachments) for key, value in data.items()}
    return data


def _fill_placeholders(data: Any, attachments: tuple[bytes, ...]) -> Any:
    """A copy of ``data`` with placeholders swapped back for their attachments."""
    if isinstance(data, list):
        return [_fill_placeholders(item, attachments) for item in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True:
            num = data.get("num")
            if type(num) is not int or not 0 <= num < len(attachments):
                raise ProtocolError(f"attachment placeholder {num!r} out of range")
            return attachments[num]
        return {key: _fill_placeholders(value, attachments) for key, value in data.items()}
    return data
