"""The pure codecs, by tables of exact wire strings."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from sioless.exceptions import PayloadError, ProtocolError
from sioless.protocol import engineio, socketio
from sioless.protocol.socketio import Packet, PacketType

ENGINE_FRAMES = [
    ("2", engineio.Packet(engineio.PacketType.PING)),
    ("3", engineio.Packet(engineio.PacketType.PONG)),
    ("1", engineio.Packet(engineio.PacketType.CLOSE)),
    ("4hello ✓", engineio.Packet(engineio.PacketType.MESSAGE, "hello ✓")),
    ("6", engineio.Packet(engineio.PacketType.NOOP)),
    (b"\x00\x01", engineio.Packet(engineio.PacketType.MESSAGE, b"\x00\x01")),
]


@pytest.mark.parametrize(("frame", "packet"), ENGINE_FRAMES)
def test_engine_frames_round_trip(frame: str | bytes, packet: engineio.Packet) -> None:
    assert engineio.decode(frame) == packet
    assert engineio.encode(packet) == frame


@pytest.mark.parametrize("frame", ["", "7", "x", "-1", "\x00"])
def test_engine_decoding_rejects_unknown_types(frame: str) -> None:
    with pytest.raises(ProtocolError):
        engineio.decode(frame)


def test_engine_refuses_binary_for_other_types() -> None:
    with pytest.raises(ValueError, match="MESSAGE"):
        engineio.encode(engineio.Packet(engineio.PacketType.PING, b"x"))


def test_engine_open_packet_and_error_bodies() -> None:
    frame = engineio.open_packet("abc", ping_interval_ms=25000, ping_timeout_ms=20000, max_payload=1000, upgrades=[])
    assert frame == '0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000}'
    body = engineio.handshake_error_body(engineio.HandshakeError.UNSUPPORTED_PROTOCOL_VERSION)
    assert body == b'{"code":5,"message":"Unsupported protocol version"}'


PAYLOADS = [
    ("4hello", ["4hello"]),
    ("4hello\x1e2\x1e4✓", ["4hello", "2", "4✓"]),
    ("bAQID", [b"\x01\x02\x03"]),
    ('451-["up",{"_placeholder":true,"num":0}]\x1ebAA==', ['451-["up",{"_placeholder":true,"num":0}]', b"\x00"]),
    ("b", [b""]),
]


@pytest.mark.parametrize(("payload", "frames"), PAYLOADS)
def test_polling_payloads_round_trip(payload: str, frames: list[str | bytes]) -> None:
    assert engineio.decode_payload(payload) == frames
    assert engineio.encode_payload(frames) == payload


@pytest.mark.parametrize("payload", ["", "4a\x1e", "\x1e4a", "4a\x1e7", "b!!", "bAQI", "x\x1e4a"])
def test_polling_payloads_reject_malformed_parts(payload: str) -> None:
    with pytest.raises(ProtocolError):
        engineio.decode_payload(payload)


SOCKET_FRAMES = [
    ("0", Packet(PacketType.CONNECT)),
    ('0{"token":"x"}', Packet(PacketType.CONNECT, data={"token": "x"})),
    ("0/admin,", Packet(PacketType.CONNECT, "/admin")),
    ('0/admin,{"sid":"s1"}', Packet(PacketType.CONNECT, "/admin", {"sid": "s1"})),
    ("1", Packet(PacketType.DISCONNECT)),
    ("1/admin,", Packet(PacketType.DISCONNECT, "/admin")),
    ('2["chat","hi"]', Packet(PacketType.EVENT, data=["chat", "hi"])),
    ('212["chat","hi"]', Packet(PacketType.EVENT, data=["chat", "hi"], id=12)),
    ('2/admin,7["x",1,null,{"a":[true]}]', Packet(PacketType.EVENT, "/admin", ["x", 1, None, {"a": [True]}], 7)),
    ('31["ok"]', Packet(PacketType.ACK, data=["ok"], id=1)),
    ("3/admin,0[]", Packet(PacketType.ACK, "/admin", [], 0)),
    ('4{"message":"nope"}', Packet(PacketType.CONNECT_ERROR, data={"message": "nope"})),
    ('2["\\u00fc\\ud83d\\ude42"]', Packet(PacketType.EVENT, data=["ü🙂"])),
]


@pytest.mark.parametrize(("frame", "packet"), SOCKET_FRAMES)
def test_socket_frames_round_trip(frame: str, packet: Packet) -> None:
    assert socketio.decode(frame) == packet
    assert socketio.encode(packet) == [frame]


def test_namespace_without_trailing_comma() -> None:
    assert socketio.decode("0/admin") == Packet(PacketType.CONNECT, "/admin")


def test_binary_packets_are_encoded_with_placeholders() -> None:
    packet = Packet(PacketType.EVENT, "/up", ["file", b"\x00\x01", {"more": [b"x"]}], 3)
    assert socketio.encode(packet) == [
        '52-/up,3["file",{"_placeholder":true,"num":0},{"more":[{"_placeholder":true,"num":1}]}]',
        b"\x00\x01",
        b"x",
    ]
    ack = Packet(PacketType.ACK, data=[b"y"], id=9)
    assert socketio.encode(ack) == ['61-9[{"_placeholder":true,"num":0}]', b"y"]


def test_binary_packets_are_reassembled_from_their_attachments() -> None:
    partial = socketio.decode('52-/up,3["file",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]')
    assert isinstance(partial, socketio.PartialPacket)
    half = partial.add(b"zero")
    assert isinstance(half, socketio.PartialPacket)
    assert half.add(b"one") == Packet(PacketType.BINARY_EVENT, "/up", ["file", b"one", b"zero"], 3)


MALFORMED = [
    "",
    "7",
    "x",
    '2{"a":1}',
    "2[]",
    "2[1]",
    '2"text"',
    '2["a"',
    '2["a",NaN]',
    '2["a",Infinity]',
    "3[]",
    '31{"a":1}',
    "39007199254740992[]",
    "312345678901234567[]",
    "0[1]",
    '01{"a":1}',
    '1{"a":1}',
    "11",
    "4",
    "41",
    '5["a"]',
    '5-["a"]',
    '50-["a"]',
    '511-["a"]',
    '5x-["a"]',
    '51000000-["a"]',
    '5\u0661-["a"]',  # an Arabic-Indic digit: str.isdigit() says yes
]


@pytest.mark.parametrize("frame", MALFORMED)
def test_socket_decoding_rejects_malformed_packets(frame: str) -> None:
    with pytest.raises(ProtocolError):
        socketio.decode(frame)


@pytest.mark.parametrize("num", ["1", "-1", '"0"', "null", "0.0", "true"])
def test_placeholders_must_name_an_attachment(num: str) -> None:
    partial = socketio.decode(f'51-["a",{{"_placeholder":true,"num":{num}}}]')
    assert isinstance(partial, socketio.PartialPacket)
    with pytest.raises(ProtocolError):
        partial.add(b"only one")


def test_attachment_limit_is_a_parameter() -> None:
    frame = '53-["a",{"_placeholder":true,"num":0}]'
    with pytest.raises(ProtocolError):
        socketio.decode(frame, max_attachments=2)
    assert isinstance(socketio.decode(frame, max_attachments=3), socketio.PartialPacket)


@pytest.mark.parametrize("namespace", ["/", "/admin", "/a,b"])
@pytest.mark.parametrize("args", [["text"], [b"\x00binary", {"more": b"\x01"}], []])
def test_an_ack_id_added_to_an_encoded_event_is_the_event_encoded_with_it(namespace: str, args: list[Any]) -> None:
    encoded_once = socketio.encode_event(namespace, "ev", args)
    assert socketio.with_ack_id(encoded_once, namespace, 73) == socketio.encode_event(namespace, "ev", args, 73)


@pytest.mark.parametrize("namespace", ["/", "/chat"])
@pytest.mark.parametrize("args", [["text"], [b"\x00binary", {"more": b"\x01"}], []])
def test_an_offset_added_to_an_encoded_event_is_its_last_argument(namespace: str, args: list[Any]) -> None:
    encoded_once = socketio.encode_event(namespace, "ev", args)
    assert socketio.with_offset(encoded_once, "17-3") == socketio.encode_event(namespace, "ev", [*args, "17-3"])


def test_an_encoder_gives_a_json_form_to_what_json_has_none_for() -> None:
    when = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    with pytest.raises(PayloadError, match="event 'at' cannot be sent"):
        socketio.encode_event("/", "at", [when])
    assert socketio.encode_event("/", "at", [when], encoder=DjangoJSONEncoder) == ['2["at","2026-12-01T00:00:00Z"]']
