"""Socket.IO v5 packets in MessagePack, as ``socket.io-msgpack-parser`` (Node) and python-socketio's
``serializer="msgpack"`` encode them (``SIOLESS["PARSER"] = "msgpack"``).

Each packet is one binary frame: a map of ``type``, ``nsp``, ``data`` (left out when there is none)
and ``id`` (left out when there is none). Bytes are native values, so there are no binary packet
types and no attachments. The limits are the default parser's: data nested deeper than
``MAX_DEPTH``, a non-finite number, a map key that is not a string, or a MessagePack extension
type is a protocol error in what a client sends, and what cannot be sent raises
:class:`~sioless.exceptions.PayloadError`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack

from ..exceptions import PayloadError, ProtocolError
from .engineio import Frame
from .socketio import MAX_ACK_ID, MAX_DEPTH, Packet, PacketType, PartialPacket, event_encoding, validate

#: The packet types a MessagePack packet may have (binary ones have no use here).
TYPES = range(PacketType.CONNECT, PacketType.CONNECT_ERROR + 1)
#: What a client's data may hold: JSON's kinds, and bytes.
PLAIN = (type(None), bool, int, float, str, bytes, list, dict)


def encode(packet: Packet, encoder: type[json.JSONEncoder] | None = None) -> list[Frame]:
    """Encode a packet as one binary frame. ``encoder`` (a ``json.JSONEncoder`` subclass) gives a
    plain form to values MessagePack has none for (a ``datetime``: its ISO string)."""
    body: dict[str, Any] = {"type": int(packet.type), "nsp": packet.namespace}
    if packet.data is not None:
        _check_sendable(packet.data)
        body["data"] = packet.data
    if packet.id is not None:
        body["id"] = packet.id
    default = (encoder or json.JSONEncoder)().default
    try:
        return [msgpack.packb(body, default=default, use_bin_type=True)]
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadError(f"{packet.type.name} data cannot be sent: {exc}") from None


#: Encode an EVENT packet; PayloadError names the event when its data cannot be sent.
encode_event = event_encoding(encode)


def with_ack_id(frames: list[Frame], namespace: str, ack_id: int) -> list[Frame]:
    """The frame of an encoded packet without an ack id, asking for ack ``ack_id``."""
    return [msgpack.packb({**_body(frames), "id": ack_id}, use_bin_type=True)]


def with_offset(frames: list[Frame], offset: str) -> list[Frame]:
    """The frame of an encoded event with ``offset`` added as its last argument (connection state
    recovery's place in the packet log)."""
    body = _body(frames)
    return [msgpack.packb({**body, "data": [*body["data"], offset]}, use_bin_type=True)]


def decode(frame: Frame, *, max_attachments: int = 0) -> Packet | PartialPacket:
    """Decode a packet's frame; ProtocolError for anything that is not a well-formed packet."""
    if isinstance(frame, str):
        raise ProtocolError("a text frame: this server's parser is MessagePack")
    try:
        body = msgpack.unpackb(frame, raw=False, strict_map_key=False, ext_hook=_refuse_extension)
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack's errors share no base class
        raise ProtocolError(f"invalid MessagePack: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError("a packet must be a map")
    kind, namespace, ack_id = body.get("type"), body.get("nsp"), body.get("id")
    if type(kind) is not int or kind not in TYPES:
        raise ProtocolError(f"unknown Socket.IO packet type {kind!r}")
    if not isinstance(namespace, str) or not namespace.startswith("/"):
        raise ProtocolError("a packet's namespace must be a string starting with '/'")
    if ack_id is not None and (type(ack_id) is not int or not 0 <= ack_id <= MAX_ACK_ID):
        raise ProtocolError("ack id out of range")
    data = body.get("data")
    _check(data)
    packet = Packet(PacketType(kind), namespace, data, ack_id)
    validate(packet)
    return packet


def _body(frames: list[Frame]) -> dict[str, Any]:
    (frame,) = frames
    assert isinstance(frame, bytes)  # encode() makes one binary frame
    body: dict[str, Any] = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    return body


def _refuse_extension(code: int, data: bytes) -> Any:
    raise ProtocolError(f"MessagePack extension type {code} is not a Socket.IO value")


def _check_sendable(data: Any) -> None:
    """PayloadError for data no socket.io client could read: non-finite numbers, nesting past MAX_DEPTH."""
    try:
        _check(data, received=False)
    except ProtocolError as exc:
        raise PayloadError(str(exc)) from None


def _check(data: Any, *, received: bool = True) -> None:
    """ProtocolError for data past the default parser's limits: non-finite numbers, nesting past
    MAX_DEPTH; in what was ``received``, also map keys that are not strings and values JSON has no
    kind for (a MessagePack timestamp)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if received and not isinstance(value, PLAIN):
            raise ProtocolError(f"a {type(value).__name__} is not a Socket.IO value")
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError(f"{value} is not a number a client can read")
        if isinstance(value, (list, tuple, dict)):
            if depth > MAX_DEPTH:
                raise ProtocolError(f"data nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                if received and not all(isinstance(key, str) for key in value):
                    raise ProtocolError("map keys must be strings")
                stack.extend((child, depth + 1) for child in value.values())
            else:
                stack.extend((child, depth + 1) for child in value)
