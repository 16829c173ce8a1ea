"""The worker in this process, driven by real engine consumers through the in-memory layer: every
packet type, connects and refusals, acks both ways, rooms and broadcasts, the server API, and the
control messages a worker takes."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

from sioless import AckTimeout, SocketGone, fields, messages, server, sio, writes
from sioless.conf import conf
from sioless.models import EngineSession, NamespaceSocket, RoomMembership
from sioless.names import worker_channel
from sioless.store import in_store_thread
from sioless.worker import Worker, outbound
from tests.support.inprocess import EngineClient, served


@pytest.fixture
async def client(in_process_worker: Worker) -> AsyncIterator[EngineClient]:
    engine = await EngineClient.open()
    yield engine
    await engine.disconnect()


async def another_client() -> EngineClient:
    engine = await EngineClient.open()
    await engine.connect()
    return engine


# CONNECT ---------------------------------------------------------------------------


async def test_connect_then_events_with_acks(client: EngineClient) -> None:
    answer = await client.connect()
    assert set(answer) == {"sid"}
    assert await client.call("echo", 1, "two", {"three": 3}) == [1, "two", {"three": 3}]
    assert await client.call("echo_sync", None, ack_id=2) == [None]
    who = (await client.call("whoami", ack_id=3))[0]
    assert who["sid"] == answer["sid"] and who["user"] is None and who["query"]["EIO"] == "4"


async def test_a_connect_handler_sends_before_connect_arrives_after_it(client: EngineClient) -> None:
    await client.send('0{"greet":true}')
    assert "sid" in await client.receive_json("0")
    assert await client.receive_json("2") == ["welcome", 1]
    assert await client.receive_json("2") == ["welcome", 2]


async def test_a_refusing_connect_handler_sends_connect_error_with_its_data(client: EngineClient) -> None:
    await client.send('0{"refuse":"nope"}')
    assert await client.receive_json("4") == {"message": "refused", "data": {"reason": "nope"}}
    await client.send('0{"refuse":""}')  # the namespace may be connected again
    assert "sid" in await client.receive_json("0")


@pytest.mark.parametrize(
    ("auth", "refusal"),
    [
        ({}, {"message": "token required"}),
        ({"token": "secret", "refuse_late": True}, {"message": "Connection refused"}),
    ],
)
async def test_middlewares_refuse_before_the_connect_handler(
    client: EngineClient, auth: dict[str, object], refusal: dict[str, str]
) -> None:
    await client.send(f"0/guarded,{json.dumps(auth)}")
    assert await client.receive_json("4/guarded,") == refusal


async def test_middlewares_then_the_connect_handler_run_in_order(client: EngineClient) -> None:
    await client.connect("/guarded", {"token": "secret"})
    assert await client.call("steps", namespace="/guarded") == [["token_required", "second_middleware", "connect"]]


async def test_namespaces_unknown_connected_twice_or_too_many_are_refused(
    client: EngineClient, fast_settings: Settings
) -> None:
    await client.send("0/nowhere,")
    assert await client.receive_json("4/nowhere,") == {"message": "Invalid namespace"}
    await client.connect()
    await client.send("0")
    assert await client.receive_json("4") == {"message": "Already connected"}
    fast_settings.SIOLESS = {**fast_settings.SIOLESS, "MAX_NAMESPACES": 2}
    await client.connect("/custom", {"token": "secret"})
    await client.send("0/dyn-1,")
    assert await client.receive_json("4/dyn-1,") == {"message": "Too many namespaces"}


async def test_class_based_and_pattern_namespaces(client: EngineClient) -> None:
    await client.send('0/custom,{"token":"wrong"}')
    assert await client.receive_json("4/custom,") == {"message": "bad token", "data": {"code": 401}}
    await client.connect("/custom", {"token": "secret"})
    assert await client.call("hello", "ann", namespace="/custom") == ["hello ann from /custom"]
    await client.connect("/dyn-42")
    assert await client.call("where", namespace="/dyn-42") == ["/dyn-42"]


async def test_a_namespace_nobody_connects_closes_the_session_after_connect_timeout(
    fast_settings: Settings, transactional_db: None
) -> None:
    fast_settings.SIOLESS = {**fast_settings.SIOLESS, "CONNECT_TIMEOUT": 0.4}
    async with served():
        engine = await EngineClient.open()
        assert await engine.closed() is not None


# EVENT and ACK -----------------------------------------------------------------------


async def test_the_catch_all_handler_gets_events_without_handlers(client: EngineClient) -> None:
    await client.connect()
    assert await client.call("unheard_of", 1) == [{"caught": "unheard_of", "args": [1]}]
    await client.send('2["connect"]')  # reserved: ignored
    assert await client.call("echo", "after") == ["after"]


async def test_binary_events_and_acks(client: EngineClient) -> None:
    await client.connect()
    await client.send('51-5["echo",{"_placeholder":true,"num":0}]')
    await client.send(b"\x00\x01\x02")
    assert await client.receive() == '61-5[{"_placeholder":true,"num":0}]'
    assert await client.receive() == b"\x00\x01\x02"


async def test_handlers_that_ack_late_never_or_with_django_values(client: EngineClient) -> None:
    await client.connect()
    assert await client.call("later", "soon") == ["soon"]
    await client.send('22["never"]')
    await client.send('23["unencodable"]')
    assert await client.call("django_values", ack_id=4) == [
        {
            "when": "2026-12-01T20:30:00Z",
            "day": "2026-12-01",
            "price": "9.90",
            "id": "00000000-0000-0000-0000-000000000001",
            "label": "Yes",
        }
    ]


async def question(client: EngineClient) -> str:
    """The ack id of the server's next question to the client."""
    frame = await client.receive()
    assert (isinstance(frame, str) and frame.startswith("2") and frame.endswith('["question",41]')) or frame.endswith(
        '["question",1]'
    ), frame
    return frame[1 : frame.index("[")]


async def test_the_server_asks_the_client_for_acks(client: EngineClient) -> None:
    await client.connect()
    await client.send('21["ask_me",5]')
    await client.send(f"3{await question(client)}[42]")
    assert await client.receive_json("31") == [{"answer": 42}]
    await client.send('22["ask_me",0.1]')
    await question(client)  # not answered
    assert await client.receive_json("32") == [{"timeout": True}]
    await client.send('23["ask_me_later"]')
    ack_id = await question(client)
    assert await client.receive_json("33") == ["asked"]
    await client.send(f"3{ack_id}[1,2]")
    assert await client.receive_json("2") == ["answered", [1, 2]]


async def test_data_a_handler_sets_is_saved(client: EngineClient) -> None:
    sid = (await client.connect())["sid"]
    await client.call("set_data", "colour", "blue")
    assert await client.call("get_data", ack_id=2) == [{"colour": "blue"}]
    row = await in_store_thread(lambda: NamespaceSocket.objects.get(sid=sid).data)
    assert row == {"colour": "blue"}


async def test_data_the_wire_encodes_is_stored_as_sent_encoded_once(
    client: EngineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = (await client.connect())["sid"]
    encodings: list[Any] = []
    json_text = fields.json_text
    monkeypatch.setattr(fields, "json_text", lambda value: encodings.append(value) or json_text(value))
    await client.call("store_now")
    await client.call("join", "after", ack_id=2)  # a state change after it: written in order
    stored = await in_store_thread(lambda: NamespaceSocket.objects.get(sid=sid).data)
    assert stored["at"].endswith("Z") or "+" in stored["at"]  # DjangoJSONEncoder's ISO string
    assert len([value for value in encodings if "at" in value]) == 1  # by the worker, not again by the field


async def test_data_that_cannot_be_stored_is_not_saved_and_stalls_nothing(
    client: EngineClient, caplog: pytest.LogCaptureFixture
) -> None:
    sid = (await client.connect())["sid"]
    await client.call("store_unstorable")
    assert "tests.handlers.store_unstorable of event 'store_unstorable'" in caplog.text
    await client.call("join", "after", ack_id=2)
    rooms = await in_store_thread(
        lambda: list(RoomMembership.objects.filter(socket_id=sid).values_list("room", flat=True))
    )
    assert rooms == ["after"]
    other = await another_client()  # connects are written too
    await other.disconnect()
    assert await client.call("echo", "alive", ack_id=3) == ["alive"]


# Rooms and broadcasts ---------------------------------------------------------------


async def test_rooms_broadcasts_and_skips(client: EngineClient) -> None:
    await client.connect()
    other = await another_client()
    try:
        assert await client.call("join", "lobby") == [["lobby"]]
        assert await other.call("join", "lobby") == [["lobby"]]
        assert await other.call("broadcast", "lobby", {"n": 1}) == ["sent"]
        assert await client.receive_json("2") == ["news", {"n": 1}]
        assert await other.receive_json("2") == ["news", {"n": 1}]
        assert await other.call("broadcast", "lobby", {"n": 2}, {"skip_self": True}, ack_id=2) == ["sent"]
        assert await client.receive_json("2") == ["news", {"n": 2}]
        rooms = await in_store_thread(lambda: sorted(RoomMembership.objects.values_list("room", flat=True)))
        assert rooms == ["lobby", "lobby"]
        assert await client.call("leave", "lobby", ack_id=3) == [[]]
        assert await other.call("broadcast", "lobby", {"n": 3}, ack_id=4) == ["sent"]
        assert await other.receive_json("2") == ["news", {"n": 3}]
        assert await client.call("echo", "nothing came before", ack_id=5) == ["nothing came before"]
    finally:
        await other.disconnect()


async def test_the_server_api_reaches_sockets_from_outside_handlers(client: EngineClient) -> None:
    sid = (await client.connect())["sid"]
    await sio.aenter_room(sid, "vip")
    assert await client.call("echo", "joined") == ["joined"]  # the command went before this event
    found = await sio.afetch_sockets(to="vip")
    assert [socket.sid for socket in found] == [sid]
    await found[0].aemit("hi", 1)
    assert await client.receive_json("2") == ["hi", 1]
    await sio.aleave_room(sid, "vip")
    await sio.aclose_room("vip")
    assert await client.call("echo", "left", ack_id=2) == ["left"]
    assert await sio.afetch_sockets(to="vip") == []


async def test_server_level_calls_collect_acks(client: EngineClient) -> None:
    sid = (await client.connect())["sid"]
    call = asyncio.ensure_future(sio.acall("question", 41, to=sid, timeout=5))
    frame = await client.receive()
    assert isinstance(frame, str) and frame.endswith('["question",41]')
    ack_id = frame[1 : frame.index("[")]
    await client.send(f"3{ack_id}[42]")
    assert await call == 42
    with pytest.raises(SocketGone):
        await sio.acall("question", to="no-such-sid", timeout=1)
    timing_out = asyncio.ensure_future(sio.acall_all("question", timeout=0.3))
    await client.receive()  # not answered
    with pytest.raises(AckTimeout):
        await timing_out


# DISCONNECT ------------------------------------------------------------------------


async def test_disconnects_from_either_side_run_the_disconnect_handler(client: EngineClient) -> None:
    await client.connect("/", {"watch": True})
    leaving = await another_client()
    leaving_sid = leaving.sids["/"]
    await leaving.send("1")  # the client disconnects the namespace
    assert await client.receive_json("2") == ["gone", {"sid": leaving_sid, "reason": "client namespace disconnect"}]
    await leaving.connect()
    await leaving.send('2["kick_me"]')
    assert await leaving.receive() == "1"
    kicked = leaving.sids["/"]
    assert await client.receive_json("2") == ["gone", {"sid": kicked, "reason": "server namespace disconnect"}]
    await leaving.disconnect()


async def test_a_disconnect_handler_reads_the_database_without_its_socket(
    client: EngineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    staying = (await client.connect("/presence"))["sid"]
    leaving = await EngineClient.open()
    await leaving.connect("/presence")
    write_all = writes._write_all

    def slow(batch: list[Any]) -> None:  # a busy database: the removal commits late
        time.sleep(0.3)
        write_all(batch)

    monkeypatch.setattr(writes, "_write_all", slow)
    await leaving.send("1/presence,")
    assert await client.receive_json("2/presence,") == ["present", [staying]]
    await leaving.disconnect()


async def test_a_close_writes_its_sockets_and_session_away_in_one_transaction(
    client: EngineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for namespace, auth in (("/", None), ("/custom", {"token": "secret"}), ("/dyn-1", None)):
        await client.connect(namespace, auth)
    transactions: list[list[str]] = []
    write_all = writes._write_all

    def counted(batch: list[Any]) -> None:
        transactions.append([function.__name__ for function, _ in batch])
        write_all(batch)

    monkeypatch.setattr(writes, "_write_all", counted)
    discard_all = outbound.group_discard_all

    async def over_the_network(*args: Any) -> None:  # as Redis is: the close waits between its sockets
        await asyncio.sleep(0.05)
        await discard_all(*args)

    monkeypatch.setattr(outbound, "group_discard_all", over_the_network)
    await client.disconnect()
    await asyncio.sleep(0.5)
    assert transactions == [["delete_socket", "delete_socket", "delete_socket", "delete_session"]]


async def test_a_connection_that_connects_and_disconnects_without_end_is_closed(client: EngineClient) -> None:
    """Each namespace connect and disconnect is a database write: past a burst of MAX_NAMESPACES
    plus NAMESPACE_CHANGES_PER_SECOND, a client may make NAMESPACE_CHANGES_PER_SECOND a second."""
    bystander = await another_client()
    for _ in range(conf.MAX_NAMESPACES):  # 200 changes, far past the burst, in far less than a second
        await client.send("0")
        await client.send("1")
    assert await client.closed() == 4002
    assert await bystander.call("echo", "unaffected") == ["unaffected"]
    await bystander.disconnect()


async def test_a_closed_connection_is_forgotten_with_its_sockets(client: EngineClient) -> None:
    await client.connect()
    other = await another_client()
    await other.disconnect()
    await asyncio.sleep(0.2)
    sessions = await in_store_thread(lambda: EngineSession.objects.count())
    assert sessions == 1


# Protocol errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    ['2["echo"]', "1", "3[1]", "7", "not a packet", b"\x01"],
    ids=[
        "event-before-connect",
        "disconnect-before-connect",
        "ack-before-connect",
        "unknown-type",
        "garbage",
        "stray-binary",
    ],
)
async def test_a_protocol_error_closes_the_session(in_process_worker: Worker, frame: str | bytes) -> None:
    engine = await EngineClient.open()
    await engine.send(frame)
    assert await engine.closed() == 4002  # PROTOCOL_ERROR


async def test_clients_do_not_send_connect_error(client: EngineClient) -> None:
    await client.connect()
    await client.send('4{"message":"x"}')
    assert await client.closed() == 4002


# Control messages ------------------------------------------------------------------


async def test_messages_of_unknown_sessions_close_them(in_process_worker: Worker) -> None:
    layer = get_channel_layer()
    reply = await layer.new_channel()
    await layer.send(worker_channel(0), {"type": messages.FRAME, "eio": "unknown", "reply": reply, "frame": "0"})
    assert (await layer.receive(reply)) == {"type": messages.CLOSE, "reason": "transport error"}
    await layer.send(worker_channel(0), {"type": messages.HAND_OVER, "eio": "unknown", "reply": reply})
    assert (await layer.receive(reply)) == {"type": messages.HANDED_OVER, "gone": True}


async def test_a_reap_closes_the_sessions_of_a_dead_process(client: EngineClient) -> None:
    await client.connect()
    layer = get_channel_layer()
    await layer.send(worker_channel(0), {"type": messages.REAP, "shard": 0, "sessions": [client.opened["sid"]]})
    assert await client.closed() == 4011


def test_the_worker_command_refuses_shards_out_of_range(fast_settings: Settings) -> None:
    with pytest.raises(CommandError, match="out of range"):
        call_command("sioless_worker", "--shard", "7")


async def test_an_event_named_like_the_catch_all_is_an_event_for_it(client: EngineClient) -> None:
    await client.connect()
    assert await client.call("*", "disconnect") == [{"caught": "*", "args": ["disconnect"]}]


async def test_a_client_that_numbers_two_events_alike_gets_both_acks(client: EngineClient) -> None:
    """As from Node's server: only an event handled again after its worker died has its ack held back."""
    await client.connect()
    assert await client.call("echo", "first", ack_id=7) == ["first"]
    assert await client.call("echo", "second", ack_id=7) == ["second"]


# From a process that serves no connection ------------------------------------------------------


async def test_a_process_serving_no_connection_is_told_its_emits_on_the_in_memory_layer_reach_no_one(
    fast_settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``manage.py shell`` or a task in development: its in-memory layer is not the server's."""
    monkeypatch.delitem(sys.modules, server.ROUTES, raising=False)
    server._warn_reaches_no_client.cache_clear()
    await sio.aemit("lost")
    await sio.aemit("lost again")
    assert caplog.text.count("reaches no client") == 1
    caplog.clear()
    server._warn_reaches_no_client.cache_clear()
    monkeypatch.setitem(sys.modules, server.ROUTES, types.ModuleType(server.ROUTES))  # the server's process
    await sio.aemit("heard")
    assert "reaches no client" not in caplog.text
