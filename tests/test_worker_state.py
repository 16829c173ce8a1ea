"""The worker's state over time, in this process: revived by a new worker, recovered by a client
that comes back (connection state recovery), handed over, expired; sweeps of overdue sessions."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from pytest_django.fixtures import Settings

from sioless import messages, sio, store
from sioless import recovery as packet_logs
from sioless.models import LostSession, SuspendedSocket
from sioless.names import worker_channel
from sioless.store import in_store_thread
from sioless.worker import Worker, recovering
from tests.support.inprocess import EngineClient, served

HOSTS = [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": None}]


@pytest.fixture
def recovery_settings(fast_settings: Settings) -> Settings:
    fast_settings.SIOLESS = {
        **fast_settings.SIOLESS,
        "CONNECTION_STATE_RECOVERY": True,
        "CONNECT_TIMEOUT": 2.0,  # sweeps every half second
        "BINARY_TIMEOUT": 0.5,
    }
    return fast_settings


@pytest.fixture
async def recovering_worker(recovery_settings: Settings, transactional_db: None) -> AsyncIterator[Worker]:
    async with served() as running:
        yield running


async def news_offset(client: EngineClient, n: int) -> str:
    """The packet-log offset a broadcast ``news`` event ``n`` came with (its last argument)."""
    event = await client.receive_json("2")
    assert event[:2] == ["news", {"n": n}], event
    return str(event[2])


async def test_a_lost_socket_is_recovered_with_what_it_missed(recovering_worker: Worker) -> None:
    lost = await EngineClient.open()
    connected = await lost.connect("/", {"watch": True})
    assert set(connected) == {"sid", "pid"}
    sender = await EngineClient.open()
    await sender.connect()
    assert await sender.call("broadcast", "watchers", {"n": 1}) == ["sent"]
    offset = await news_offset(lost, 1)
    await lost.disconnect()
    assert await sender.call("broadcast", "watchers", {"n": 2}, ack_id=2) == ["sent"]
    back = await EngineClient.open()
    await back.send(f'0{{"pid":"{connected["pid"]}","offset":"{offset}"}}')
    assert (await back.receive_json("0"))["sid"] == connected["sid"]
    assert await news_offset(back, 2)
    assert await back.call("echo", "same socket") == ["same socket"]
    await back.disconnect()
    await sender.disconnect()


async def test_a_made_up_or_unknown_pid_connects_afresh(recovering_worker: Worker) -> None:
    client = await EngineClient.open()
    await client.send('0{"pid":"no-such-pid","offset":"0-0"}')
    answer = await client.receive_json("0")
    assert set(answer) == {"sid", "pid"} and answer["pid"] != "no-such-pid"
    await client.send('0/custom,{"pid":"p","offset":"not an offset","token":"secret"}')
    assert "sid" in await client.receive_json("0/custom,")
    await client.disconnect()


async def test_a_pid_whose_connection_is_alive_is_not_taken_over(recovering_worker: Worker) -> None:
    live = await EngineClient.open()
    connected = await live.connect()
    sender = await EngineClient.open()
    await sender.connect()
    await sender.call("broadcast", live.sids["/"], {"n": 1})
    offset = await news_offset(live, 1)
    thief = await EngineClient.open()
    await thief.send(f'0{{"pid":"{connected["pid"]}","offset":"{offset}"}}')
    assert (await thief.receive_json("0", timeout=10))["sid"] != connected["sid"]  # its client answered the probe
    assert await live.call("echo", "still mine") == ["still mine"]
    for client in (live, sender, thief):
        await client.disconnect()


async def test_a_suspended_socket_not_recovered_in_time_expires(
    recovery_settings: Settings, transactional_db: None
) -> None:
    recovery_settings.SIOLESS = {**recovery_settings.SIOLESS, "MAX_DISCONNECTION_DURATION": 0.3}
    async with served():
        watcher = await EngineClient.open()
        await watcher.connect("/", {"watch": True})
        lost = await EngineClient.open()
        await lost.connect()
        await lost.disconnect()
        gone = await watcher.receive_json("2", timeout=10)
        assert gone[:2] == ["gone", {"sid": lost.sids["/"], "reason": "transport close"}]
        assert await in_store_thread(lambda: SuspendedSocket.objects.count()) == 0
        await watcher.disconnect()


async def test_a_lost_session_keeps_its_handshake_once_and_expires_in_bulk(recovering_worker: Worker) -> None:
    lost = await EngineClient.open()
    for namespace in ("/", "/presence"):
        await lost.connect(namespace)
    await lost.disconnect()
    await recovering_worker.writes.caught_up()
    assert await in_store_thread(lambda: (LostSession.objects.count(), SuspendedSocket.objects.count())) == (1, 2)
    expired = await in_store_thread(store.expire_suspended, 0)
    assert sorted(stored.namespace for stored, _ in expired) == ["/", "/presence"]
    assert all(stored.handshake == expired[0][0].handshake for stored, _ in expired)
    assert await in_store_thread(lambda: (LostSession.objects.count(), SuspendedSocket.objects.count())) == (0, 0)


async def test_an_incomplete_binary_packet_closes_its_session(recovering_worker: Worker) -> None:
    client = await EngineClient.open()
    await client.connect()
    await client.send('51-["echo",{"_placeholder":true,"num":0}]')
    assert await client.closed() == 4002


async def test_a_new_worker_revives_sessions_sockets_rooms_and_data(
    fast_settings: Settings, transactional_db: None
) -> None:
    async with served():
        client = await EngineClient.open()
        sid = (await client.connect())["sid"]
        await client.call("join", "kept")
        await client.call("set_data", "colour", "green", ack_id=2)
    async with served():  # the clients stay connected meanwhile
        assert await client.call("get_data", ack_id=3) == [{"colour": "green"}]
        assert (await client.call("whoami", ack_id=4))[0]["sid"] == sid
        other = await EngineClient.open()
        await other.connect()
        await other.call("broadcast", "kept", {"n": 1})
        assert (await client.receive_json("2"))[:2] == ["news", {"n": 1}]
        assert client.sids["/"] == sid
        await other.disconnect()
        await client.disconnect()
        await asyncio.sleep(0.1)


# What a recovering client may not do -----------------------------------------------


async def lost_socket(
    namespace: str = "/", auth: dict[str, object] | None = None, user: object = None
) -> tuple[str, str]:
    """A socket connected then lost (its client went away): its sid and pid."""
    lost = await EngineClient.open(user=user)
    connected = await lost.connect(namespace, auth)
    await lost.disconnect()
    await asyncio.sleep(0.2)  # the worker suspends it
    return connected["sid"], connected["pid"]


async def recover(namespace: str, pid: str, user: object = None, **sent: object) -> tuple[EngineClient, str]:
    """A new connection recovering ``pid`` (offset 0-0: older than the log, all of it missed); the
    first frame it gets back for the namespace."""
    client = await EngineClient.open(user=user)
    prefix = "" if namespace == "/" else f"{namespace},"
    await client.send(f"0{prefix}{json.dumps({'pid': pid, 'offset': '0-0', **sent})}")
    frame = await client.receive()
    assert isinstance(frame, str)
    return client, frame


async def test_a_recovery_never_takes_the_auth_the_client_sends(recovering_worker: Worker) -> None:
    sid, pid = await lost_socket()  # it sent no auth: the server stored {}
    client, frame = await recover("/", pid, role="admin", user_id="1")
    assert json.loads(frame[1:])["sid"] == sid
    assert (await client.call("handshake"))[0]["auth"] == {}
    await client.disconnect()


async def test_without_a_stored_auth_a_recovery_runs_the_connect_steps(
    recovery_settings: Settings, transactional_db: None
) -> None:
    recovery_settings.SIOLESS = {**recovery_settings.SIOLESS, "KEEP_AUTH": False}
    async with served():
        _, pid = await lost_socket("/guarded", {"token": "secret"})
        refused, frame = await recover("/guarded", pid)  # no token now: the middleware refuses
        assert frame == '4/guarded,{"message":"token required"}'
        await refused.disconnect()
        _, pid = await lost_socket("/guarded", {"token": "secret"})
        client, frame = await recover("/guarded", pid, token="secret")
        assert frame.startswith("0/guarded,")
        assert await client.call("steps", namespace="/guarded") == [["token_required", "second_middleware", "connect"]]
        await client.disconnect()


async def test_a_socket_is_recovered_by_its_own_user_only(recovering_worker: Worker) -> None:
    User = get_user_model()
    ann = await in_store_thread(lambda: User.objects.create_user("ann"))
    sid, pid = await lost_socket(user=ann)
    stranger, frame = await recover("/", pid)  # a tab of the same browser after logout, or a leaked pid
    assert json.loads(frame[1:])["sid"] != sid
    owner, frame = await recover("/", pid, user=ann)  # still suspended for its own user
    assert json.loads(frame[1:])["sid"] == sid
    await stranger.disconnect()
    await owner.disconnect()


async def test_an_offset_past_what_a_stream_id_holds_recovers_nothing(recovering_worker: Worker) -> None:
    sid, pid = await lost_socket()
    client = await EngineClient.open()
    await client.send(f'0{{"pid":"{pid}","offset":"0-99999999999999999999"}}')
    assert (await client.receive_json("0"))["sid"] != sid
    assert await in_store_thread(lambda: SuspendedSocket.objects.filter(sid=sid).exists())
    await client.disconnect()


async def test_two_hand_overs_at_once_take_no_live_connection(recovering_worker: Worker) -> None:
    live = await EngineClient.open()
    connected = await live.connect()
    thieves = [await EngineClient.open() for _ in range(2)]
    for thief in thieves:
        await thief.send(f'0{{"pid":"{connected["pid"]}","offset":"0-0"}}')
    for thief in thieves:
        assert (await thief.receive_json("0", timeout=10))["sid"] != connected["sid"]
    assert await live.call("echo", "still mine") == ["still mine"]
    for client in (live, *thieves):
        await client.disconnect()


async def test_a_refused_recovery_gets_nothing_its_rooms_were_sent_meanwhile(
    recovery_settings: Settings, transactional_db: None
) -> None:
    recovery_settings.SIOLESS = {**recovery_settings.SIOLESS, "RECOVERY_SKIPS_CONNECT_HANDLERS": False}
    async with served():
        _, pid = await lost_socket("/slow-guard", {"token": "secret"})
        client = await EngineClient.open()
        await client.send(f'0/slow-guard,{{"pid":"{pid}","offset":"0-0","slow":true}}')
        await asyncio.sleep(0.2)  # the middleware runs: the room's broadcasts are held meanwhile
        await sio.aemit("news", "not for a refused client", to="guarded-room", namespace="/slow-guard")
        assert await client.receive_json("4/slow-guard,") == {"message": "token required"}
        assert await client.nothing_more()
        await client.disconnect()


@pytest.fixture
async def redis_layer(fast_settings: Settings, transactional_db: None) -> AsyncIterator[Any]:
    """The Redis channel layer (whose worker channels outlive a worker), with keys of the test's own."""
    prefix = f"siotest-redelivery-{uuid.uuid4().hex[:8]}"
    fast_settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "sioless.layers.RedisChannelLayer", "CONFIG": {"hosts": HOSTS, "prefix": prefix}}
    }
    layer = get_channel_layer()
    try:
        yield layer
    finally:
        await layer.flush()


async def test_events_a_dead_worker_had_taken_run_again_marked_and_ack_once(redis_layer: Any) -> None:
    """At least once, exactly once on the wire: a worker killed as its handlers ran leaves their
    events to the next, whose handlers see ``socket.redelivered``; an ack the client already has
    is not sent again."""
    layer = redis_layer
    async with served() as first:
        client = await EngineClient.open()
        sid = (await client.connect())["sid"]
        (conn,) = first.connections.values()
    await client.send('21["redelivered"]')  # no worker now: they wait in its channel
    await client.send('22["redelivered"]')
    await asyncio.sleep(0.2)
    taken = await layer.take(worker_channel(0))  # a worker takes them, starts them, and dies
    assert len(taken) == 2
    dead_workers_ack = {"type": messages.FRAMES, "frames": ['31["acked before dying"]'], "ack": [sid, 1]}
    await layer.send(conn.reply, dead_workers_ack)
    assert await client.receive() == '31["acked before dying"]'
    async with served():
        assert await client.receive() == "32[true]"  # the ack of event 1 is not sent twice
        assert await client.call("redelivered", ack_id=3) == [False]
        assert await client.nothing_more(0.3)
        await client.disconnect()


async def test_an_open_and_connect_a_dead_worker_handled_are_not_handled_again(redis_layer: Any) -> None:
    """A worker killed within a receipt interval of handling an OPEN and a CONNECT leaves them to
    the next, which revived the connection and its socket from the database: it neither makes a
    new connection nor refuses the namespace as already connected; the client goes on."""
    layer = redis_layer
    async with served() as first:
        client = await EngineClient.open()
        sid = (await client.connect())["sid"]
        (conn,) = first.connections.values()
        stamp = {"eio": conn.eio_sid, "reply": conn.reply}
    handled_again = [
        {"type": messages.OPEN, "handshake": conn.handshake.to_message(), **stamp},
        {"type": messages.FRAME, "frame": "40", "seq": 1, **stamp},
    ]
    for message in handled_again:
        await layer.send(worker_channel(0), message)
    assert len(await layer.take(worker_channel(0))) == 2  # taken by a worker that dies
    async with served() as second:
        assert await client.call("echo", "still here") == ["still here"]
        assert await client.nothing_more(0.3)  # no CONNECT_ERROR, no second CONNECT
        assert second.connections[conn.eio_sid].sockets["/"].sid == sid
        await client.disconnect()


async def test_a_recovery_never_replays_what_was_sent_before_the_socket_connected(
    recovering_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovering, "CLOCK_SLACK", 0.0)
    sender = await EngineClient.open()
    await sender.connect()
    await sender.call("broadcast", "watchers", {"n": 0})  # before the socket below existed
    await asyncio.sleep(0.05)
    sid, pid = await lost_socket("/", {"watch": True})
    await sender.call("broadcast", "watchers", {"n": 1}, ack_id=2)  # missed while it was away
    client, frame = await recover("/", pid)  # an offset older than the log: "send me everything"
    assert json.loads(frame[1:])["sid"] == sid
    assert (await client.receive_json("2"))[:2] == ["news", {"n": 1}]
    assert await client.nothing_more()
    await client.disconnect()
    await sender.disconnect()


async def test_a_recovery_never_replays_what_a_room_was_sent_before_the_socket_joined_it(
    recovering_worker: Worker,
) -> None:
    lost = await EngineClient.open()
    connected = await lost.connect()
    sender = await EngineClient.open()
    await sender.connect()
    await sender.call("broadcast", "private", {"n": 0})  # before the socket below joined "private"
    await asyncio.sleep(0.05)
    assert await lost.call("join", "private") == [["private"]]
    await lost.disconnect()
    await asyncio.sleep(0.2)  # suspended
    await sender.call("broadcast", "private", {"n": 1})  # missed while it was away
    client, frame = await recover("/", connected["pid"])  # offset 0-0: "send me everything"
    assert json.loads(frame[1:])["sid"] == connected["sid"]
    assert (await client.receive_json("2"))[:2] == ["news", {"n": 1}]
    assert await client.nothing_more()
    await client.disconnect()
    await sender.disconnect()


async def test_a_namespace_that_sent_too_much_meanwhile_is_not_read_for_a_recovery(
    recovering_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packet_logs, "MAX_READ", 3)
    sid, pid = await lost_socket()
    sender = await EngineClient.open()
    await sender.connect()
    for n in range(5):  # to a room the lost socket is not in: read all the same
        await sender.call("broadcast", "elsewhere", {"n": n}, ack_id=n + 1)
    client, frame = await recover("/", pid)
    assert json.loads(frame[1:])["sid"] != sid  # afresh
    for each in (client, sender):
        await each.disconnect()


async def test_a_pid_recovered_again_and_again_starts_afresh(
    recovering_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovering, "RECOVERIES_PER_MINUTE", 2)
    sid, pid = await lost_socket()
    for _ in range(2):
        client, frame = await recover("/", pid)
        assert json.loads(frame[1:])["sid"] == sid
        await client.disconnect()
        await asyncio.sleep(0.2)
    client, frame = await recover("/", pid)
    assert json.loads(frame[1:])["sid"] != sid
    await client.disconnect()


async def test_a_socket_revived_without_its_auth_runs_its_connect_steps_when_recovered(
    recovery_settings: Settings, transactional_db: None
) -> None:
    """A worker revived a socket whose auth it could not read (SECRET_KEY changed): when that
    socket is lost and recovered, the ``{}`` it was revived with is not taken for its auth."""
    async with served():
        client = await EngineClient.open()
        connected = await client.connect("/guarded", {"token": "secret"})
    recovery_settings.SECRET_KEY = "a key of the next deploy"
    async with served():  # revived without its auth
        await client.disconnect()  # lost: suspended
        await asyncio.sleep(0.2)
        refused, frame = await recover("/guarded", connected["pid"])
        assert frame == '4/guarded,{"message":"token required"}'
        await refused.disconnect()


async def test_a_recovery_that_fails_half_way_leaves_the_socket_suspended(
    recovering_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid, pid = await lost_socket()
    missed = packet_logs.MemoryPacketLog.missed

    async def unreadable(self: packet_logs.PacketLog, *args: Any, bounded: bool = True) -> Any:
        if not bounded:  # the second read, once its consumer holds broadcasts: Redis went away
            raise ConnectionError("the log cannot be read")
        return await missed(self, *args, bounded=bounded)

    monkeypatch.setattr(packet_logs.MemoryPacketLog, "missed", unreadable)
    client, frame = await recover("/", pid)
    assert frame == '4{"message":"Internal server error"}'
    await client.disconnect()
    assert await in_store_thread(lambda: SuspendedSocket.objects.filter(sid=sid).exists())
    monkeypatch.setattr(packet_logs.MemoryPacketLog, "missed", missed)
    client, frame = await recover("/", pid)  # the client tries again
    assert json.loads(frame[1:])["sid"] == sid
    await client.disconnect()
