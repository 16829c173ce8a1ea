"""Property-based fuzzing of the codecs (hypothesis): any input decodes or raises ProtocolError,
never anything else, and valid packets survive encode then decode."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sioless.exceptions import PayloadError, ProtocolError
from sioless.protocol import engineio, socketio
from sioless.protocol.socketio import Packet, PacketType

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Text shaped like Socket.IO packets, so that the fuzzer reaches past the first character.
packet_like = st.builds(
    lambda kind, count, namespace, ack, body: f"{kind}{count}{namespace}{ack}{body}",
    st.sampled_from(list("0123456789x")),
    st.sampled_from(["", "1-", "2-", "0-", "99-", "-", "a-"]),
    st.sampled_from(["", "/", "/admin,", "/a,b", ",", "/\ud800,"]),
    st.sampled_from(["", "0", "12", "9007199254740993", "-1"]),
    st.one_of(
        st.text(),
        st.sampled_from(['["e",1e999]', '["e",NaN]', "[" * 40 + "]" * 40, '{"sid":1}', '["e",{"_placeholder":true}]']),
        st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists, max_leaves=8).map(json.dumps),
    ),
)


@FUZZ
@given(st.one_of(st.text(), packet_like))
def test_socketio_decoding_raises_only_protocol_errors(text: str) -> None:
    try:
        decoded = socketio.decode(text, max_attachments=3)
        if isinstance(decoded, socketio.PartialPacket):
            for n in range(decoded.attachment_count):
                decoded = decoded.add(bytes([n]))  # type: ignore[union-attr]
    except ProtocolError:
        return
    assert isinstance(decoded, Packet)


@FUZZ
@given(st.one_of(st.text(), st.binary()))
def test_engineio_decoding_raises_only_protocol_errors(frame: str | bytes) -> None:
    with contextlib.suppress(ProtocolError):
        engineio.decode(frame)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("b4\x1e26AQID=é\ud800x"))) | st.text())
def test_polling_payloads_raise_only_protocol_errors(payload: str) -> None:
    with contextlib.suppress(ProtocolError):
        engineio.decode_payload(payload)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    # not a key "_placeholder": in a packet with attachments that object reads as a placeholder (in
    # Node's parser too, which throws "illegal attachments" for it)
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text().filter(lambda key: key != "_placeholder"), children, max_size=4)
    ),
    max_leaves=12,
)
namespaces = st.sampled_from(["/", "/admin", "/ü🙂"]) | st.text().map(lambda t: "/" + t.replace(",", ""))
ack_ids = st.none() | st.integers(0, socketio.MAX_ACK_ID)


@FUZZ
@given(namespaces, st.text(min_size=1), st.lists(json_values | st.binary(), max_size=4), ack_ids)
def test_events_round_trip(namespace: str, event: str, args: list[Any], ack_id: int | None) -> None:
    packet = Packet(PacketType.EVENT, namespace, [event, *args], ack_id)
    text, *attachments = socketio.encode(packet)
    assert isinstance(text, str)
    decoded = socketio.decode(text, max_attachments=10)
    for attachment in attachments:
        assert isinstance(decoded, socketio.PartialPacket)
        decoded = decoded.add(attachment)  # type: ignore[arg-type]
    assert isinstance(decoded, Packet)
    expected_type = PacketType.BINARY_EVENT if attachments else PacketType.EVENT
    assert (decoded.type, decoded.namespace, decoded.id) == (expected_type, namespace, ack_id)
    assert _normal(decoded.data) == _normal([event, *args])


@FUZZ
@given(namespaces, st.dictionaries(st.text(), json_values, max_size=3))
def test_connects_round_trip(namespace: str, auth: dict[str, Any]) -> None:
    [text] = socketio.encode(Packet(PacketType.CONNECT, namespace, auth))
    assert isinstance(text, str)
    assert socketio.decode(text) == Packet(PacketType.CONNECT, namespace, auth)


def _normal(value: Any) -> Any:
    """Floats as JSON gives them back (``-0.0`` is ``-0.0``; ints stay ints)."""
    return json.loads(json.dumps(value, default=lambda b: repr(b))) if not isinstance(value, bytes) else value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"x": [math.nan]}])
def test_non_finite_numbers_are_never_encoded(value: Any) -> None:
    with pytest.raises(PayloadError, match="'pointer'"):
        socketio.encode_event("/", "pointer", [value])


@pytest.mark.parametrize("text", ['2["pointer",1e999,0.5]', '2["p",-1e400]', '2["p",{"x":[1E309]}]'])
def test_numbers_out_of_range_are_protocol_errors(text: str) -> None:
    with pytest.raises(ProtocolError, match="out of range"):
        socketio.decode(text)


def test_nesting_past_max_depth_is_a_protocol_error() -> None:
    depth = socketio.MAX_DEPTH
    at_limit = '2["e",' + "[" * (depth - 1) + "]" * (depth - 1) + "]"
    assert isinstance(socketio.decode(at_limit), Packet)
    with pytest.raises(ProtocolError, match="nested deeper"):
        socketio.decode('2["e",' + "[" * depth + "]" * depth + "]")
    binary = '51-["e",' + "[" * 600 + '{"_placeholder":true,"num":0}' + "]" * 600 + "]"
    with pytest.raises(ProtocolError):
        socketio.decode(binary)
