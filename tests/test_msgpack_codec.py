"""The MessagePack parser's codec: maps as socket.io-msgpack-parser and python-socketio make and
read them, and the default parser's limits on what a client sends and what can be sent."""

from __future__ import annotations

import datetime
from typing import Any

import msgpack
import pytest
from django.core.serializers.json import DjangoJSONEncoder

from sioless.exceptions import PayloadError, ProtocolError
from sioless.protocol import msgpack as parser
from sioless.protocol.socketio import MAX_DEPTH, Packet, PacketType


def packed(body: Any) -> bytes:
    return bytes(msgpack.packb(body, use_bin_type=True, datetime=True))


def nested(depth: int) -> list[Any]:
    """A list nesting ``depth`` lists in itself."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


PACKETS = [
    ({"type": 0, "nsp": "/", "data": {"token": "x"}}, Packet(PacketType.CONNECT, "/", {"token": "x"})),
    ({"type": 0, "nsp": "/admin"}, Packet(PacketType.CONNECT, "/admin")),
    ({"type": 1, "nsp": "/"}, Packet(PacketType.DISCONNECT, "/")),
    (
        {"type": 2, "nsp": "/", "data": ["chat", b"\x00\xff", 1.5]},
        Packet(PacketType.EVENT, "/", ["chat", b"\x00\xff", 1.5]),
    ),
    ({"type": 2, "nsp": "/", "data": ["chat"], "id": 12}, Packet(PacketType.EVENT, "/", ["chat"], 12)),
    (
        {"type": 3, "nsp": "/chat", "data": [None, {"a": [1]}], "id": 0},
        Packet(PacketType.ACK, "/chat", [None, {"a": [1]}], 0),
    ),
    ({"type": 4, "nsp": "/", "data": {"message": "no"}}, Packet(PacketType.CONNECT_ERROR, "/", {"message": "no"})),
]


@pytest.mark.parametrize(("body", "packet"), PACKETS)
def test_packets_round_trip_as_one_binary_frame(body: dict[str, Any], packet: Packet) -> None:
    assert parser.decode(packed(body)) == packet
    (frame,) = parser.encode(packet)
    assert msgpack.unpackb(frame) == body  # no "data" or "id" key when there is none: Node's parser checks


def test_python_socketio_s_nil_data_is_no_data() -> None:
    """python-socketio's msgpack packets always have a "data" key, nil when there is none."""
    assert parser.decode(packed({"type": 1, "data": None, "nsp": "/"})) == Packet(PacketType.DISCONNECT, "/")


@pytest.mark.parametrize(
    "frame",
    [
        '2["chat"]',  # a text frame: the client speaks the default parser
        b"\xc1",  # never used in MessagePack
        packed([2, "/", ["chat"]]),  # not a map
        packed({"type": 5, "nsp": "/", "data": ["x"]}),  # binary packet types do not exist here
        packed({"type": "2", "nsp": "/", "data": ["x"]}),
        packed({"type": 2, "data": ["x"]}),  # no namespace
        packed({"type": 2, "nsp": "chat", "data": ["x"]}),
        packed({"type": 2, "nsp": "/", "data": ["x"], "id": -1}),
        packed({"type": 2, "nsp": "/", "data": ["x"], "id": 2**53}),
        packed({"type": 2, "nsp": "/", "data": [1]}),  # no event name
        packed({"type": 3, "nsp": "/", "data": [1]}),  # an ack without its id
        packed({"type": 1, "nsp": "/", "data": ["x"]}),
        packed({"type": 2, "nsp": "/", "data": ["x", float("nan")]}),
        packed({"type": 2, "nsp": "/", "data": ["x", float("inf")]}),
        packed({"type": 2, "nsp": "/", "data": ["x", {1: "int key"}]}),
        packed({"type": 2, "nsp": "/", "data": ["x", msgpack.ExtType(5, b"ext")]}),
        packed(
            {"type": 2, "nsp": "/", "data": ["x", datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)]}
        ),  # a timestamp extension
        packed({"type": 2, "nsp": "/", "data": ["x", nested(MAX_DEPTH)]}),
    ],
)
def test_what_is_not_a_well_formed_packet_is_a_protocol_error(frame: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        parser.decode(frame)


def test_data_as_deep_as_the_limit_is_taken() -> None:
    data = ["x", *nested(MAX_DEPTH - 1)]
    assert parser.decode(packed({"type": 2, "nsp": "/", "data": data})).data == data


@pytest.mark.parametrize("args", [[float("nan")], [float("-inf")], [nested(MAX_DEPTH)], [object()]])
def test_what_no_client_could_read_is_not_sent(args: list[Any]) -> None:
    with pytest.raises(PayloadError, match="'news'"):
        parser.encode_event("/", "news", args)


def test_an_encoder_gives_a_plain_form_to_what_msgpack_has_none_for() -> None:
    when = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
    (frame,) = parser.encode_event("/", "at", [when], encoder=DjangoJSONEncoder)
    assert msgpack.unpackb(frame)["data"] == ["at", "2026-12-07T12:00:00Z"]


def test_an_ack_id_and_an_offset_added_to_an_encoded_event() -> None:
    encoded = parser.encode_event("/chat", "news", [{"n": 1}])
    assert parser.decode(parser.with_ack_id(encoded, "/chat", 7)[0]) == Packet(
        PacketType.EVENT, "/chat", ["news", {"n": 1}], 7
    )
    with_offset = parser.with_offset(encoded, "1-0")
    assert parser.decode(with_offset[0]) == Packet(PacketType.EVENT, "/chat", ["news", {"n": 1}, "1-0"])
