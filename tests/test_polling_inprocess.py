"""Long-polling and its upgrade in this process: the request consumer carrying GETs and POSTs to the
session's consumer through the in-memory layer, the upgrading WebSocket relaying both ways, and the
worker behind them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import HttpCommunicator, WebsocketCommunicator
from pytest_django.fixtures import Settings

from sioless import Socket, engine_stats, messages, signals, sio
from sioless.models import EngineSession
from sioless.names import HEARTBEAT_GROUP
from sioless.polling import PollingConsumer, UpgradeConsumer, session
from sioless.protocol.engineio import decode_payload
from sioless.sids import session_channel, session_key
from sioless.worker import Worker
from tests.support.waiting import wait_until

PATH = "/socket.io/?EIO=4&transport=polling"


async def request(method: str, query: str = "", body: bytes = b"", timeout: float = 10) -> tuple[int, bytes]:
    """One polling request; its status and body (TimeoutError when it takes over ``timeout`` seconds)."""
    communicator = HttpCommunicator(PollingConsumer.as_asgi(), method, f"{PATH}{query}", body=body)
    response = await communicator.get_response(timeout=timeout)
    return response["status"], response["body"]


async def handshake() -> str:
    """A new polling session's sid."""
    status, body = await request("GET")
    assert status == 200 and body.startswith(b"0"), body
    opened: dict[str, Any] = json.loads(body[1:])
    assert opened["upgrades"] == ["websocket"]
    return str(opened["sid"])


async def poll(sid: str) -> list[Any]:
    """The frames of the next GET."""
    status, body = await request("GET", f"&sid={sid}")
    assert status == 200, body
    return decode_payload(body.decode())


async def post(sid: str, payload: str) -> tuple[int, bytes]:
    return await request("POST", f"&sid={sid}", payload.encode())


async def test_a_polling_client_connects_and_gets_its_acks(in_process_worker: Worker) -> None:
    sid = await handshake()
    assert await post(sid, "40") == (200, b"ok")
    (connect,) = await poll(sid)
    assert connect.startswith("40{")
    assert await post(sid, '421["echo","polled"]\x1e422["echo_sync",2]') == (200, b"ok")
    frames: list[Any] = []
    while len(frames) < 2:
        frames += await poll(sid)
    assert sorted(frames) == ['431["polled"]', "432[2]"]


async def test_no_stored_session_name_is_good_for_a_request(in_process_worker: Worker) -> None:
    """A polling sid is a bearer token: the worker, its rows and its logs know the session by a key
    that no request is answered for."""
    sid = await handshake()
    assert await post(sid, "40") == (200, b"ok")
    await poll(sid)
    await in_process_worker.writes.caught_up()
    (stored,) = await sync_to_async(list)(EngineSession.objects.values_list("sid", flat=True))
    assert stored == session_key(sid) and sid not in stored and session_channel(stored) is None
    assert (await request("GET", f"&sid={stored}"))[0] == 400


async def test_requests_for_unknown_malformed_or_oversized_sessions_are_refused(in_process_worker: Worker) -> None:
    assert (await request("GET", "&sid=nonsense"))[0] == 400
    assert (await request("PUT"))[0] == 400
    sid = await handshake()
    assert (await post(sid, "not a packet"))[0] == 400  # and the session closes
    assert (await request("GET", f"&sid={sid}"))[0] == 400
    sid = await handshake()
    assert (await post(sid, "4" + "x" * 200_000))[0] == 413


@pytest.mark.parametrize(
    ("reason", "answer"),
    [("transport close", 400), ("transport error", 400), ("parse error", 200)],
)
async def test_a_session_its_worker_ends_answers_the_waiting_get_by_whose_doing_it_was(
    in_process_worker: Worker, reason: str, answer: int
) -> None:
    """A session the server side ended (its process taken for dead, handed over, unknown to its
    worker) is unknown to its client, which comes back (python-socketio's client does not after a
    CLOSE packet); one ended for what the client sent gets the CLOSE packet, as from Node."""
    sid = await handshake()
    waiting = asyncio.ensure_future(request("GET", f"&sid={sid}"))
    await asyncio.sleep(0.2)
    channel = session_channel(sid)
    assert channel is not None
    await get_channel_layer().send(channel, {"type": messages.CLOSE, "reason": reason})
    unknown = (400, {"code": 1, "message": "Session ID unknown"})
    status, body = await waiting
    assert (status, json.loads(body) if status == 400 else body) == (unknown if answer == 400 else (200, b"1"))


async def test_a_second_get_while_one_waits_closes_the_session(in_process_worker: Worker) -> None:
    sid = await handshake()
    waiting = asyncio.ensure_future(request("GET", f"&sid={sid}"))
    await asyncio.sleep(0.2)
    assert (await request("GET", f"&sid={sid}"))[0] == 400
    status, body = await waiting
    assert (status, body) == (200, b"1")  # the CLOSE packet


async def probed() -> tuple[str, WebsocketCommunicator, asyncio.Future[list[Any]]]:
    """A connected polling session whose upgrade a WebSocket probed, with a GET waiting: its sid,
    the WebSocket, the GET."""
    sid = await handshake()
    await post(sid, "40")
    await poll(sid)
    websocket = WebsocketCommunicator(UpgradeConsumer.as_asgi(), f"/socket.io/?EIO=4&transport=websocket&sid={sid}")
    assert (await websocket.connect(timeout=5))[0]
    waiting = asyncio.ensure_future(poll(sid))
    await websocket.send_to(text_data="2probe")
    assert await websocket.receive_from(5) == "3probe"
    return sid, websocket, waiting


async def test_an_upgrade_moves_the_session_to_the_websocket(in_process_worker: Worker) -> None:
    sid, websocket, waiting = await probed()
    assert await waiting == ["6"]  # the waiting GET released with a NOOP
    await websocket.send_to(text_data="5")
    await websocket.send_to(text_data='421["echo","upgraded"]')
    assert await websocket.receive_from(5) == '431["upgraded"]'
    assert (await request("GET", f"&sid={sid}"))[0] == 400  # polling is over
    second = WebsocketCommunicator(UpgradeConsumer.as_asgi(), f"/socket.io/?EIO=4&transport=websocket&sid={sid}")
    assert (await second.connect(timeout=5))[0]  # as Node: accepted, then closed at once
    assert (await second.receive_output(5))["type"] == "websocket.close"
    await websocket.disconnect()


async def test_an_upgrade_is_signalled_for_each_socket(in_process_worker: Worker) -> None:
    upgraded: asyncio.Future[tuple[str, str, bool]] = asyncio.get_running_loop().create_future()

    async def receiver(sender: type, socket: Socket, transport: str, **named: Any) -> None:
        upgraded.set_result((socket.namespace, transport, socket.conn.upgraded))

    signals.socket_upgraded.connect(receiver)
    try:
        sid, websocket, waiting = await probed()
        await waiting
        await websocket.send_to(text_data="5")
        assert await asyncio.wait_for(upgraded, 5) == ("/", "websocket", True)
        stored = EngineSession.objects.filter(sid=session_key(sid), upgraded=True)
        async with asyncio.timeout(5):  # what the Admin UI's all_sockets shows
            while not await stored.aexists():  # noqa: ASYNC110 (written by the worker: nothing to await)
                await asyncio.sleep(0.1)
        await websocket.disconnect()
    finally:
        signals.socket_upgraded.disconnect(receiver)


async def test_a_server_process_counts_its_polling_clients_until_they_upgrade(in_process_worker: Worker) -> None:
    """What the Admin UI is told of this process (Node's ``pollingClientsCount``)."""
    sio.instrument(auth=False)
    try:
        watch = engine_stats.watch
        assert watch is not None
        _, websocket, waiting = await probed()
        await waiting
        assert watch.counts() == (1, 1)
        await websocket.send_to(text_data="5")
        await wait_until(lambda: watch.counts() == (1, 0), timeout=5)
        await websocket.disconnect()
        await wait_until(lambda: watch.counts() == (0, 0), timeout=5)
    finally:
        sio.uninstrument()


async def test_after_a_probe_a_waiting_get_gets_what_is_due_before_a_noop(
    in_process_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Node's: the NOOP that lets the client pause polling comes at a check interval after the
    probe, so an answer due meanwhile (the CONNECT, an ack) is the packet the client gets."""
    monkeypatch.setattr(session, "NOOP_CHECK_INTERVAL", 1.0)
    sid, websocket, waiting = await probed()
    assert await post(sid, '421["echo","before the noop"]') == (200, b"ok")
    assert await waiting == ['431["before the noop"]']
    assert await poll(sid) == ["6"]
    await websocket.disconnect()


async def test_a_websocket_for_a_closed_session_is_refused(in_process_worker: Worker) -> None:
    sid = await handshake()
    assert await post(sid, "1") == (200, b"ok")  # the client closes
    websocket = WebsocketCommunicator(UpgradeConsumer.as_asgi(), f"/socket.io/?EIO=4&transport=websocket&sid={sid}")
    assert not (await websocket.connect(timeout=5))[0]


async def test_a_request_past_the_ping_timeout_finds_the_session_closed(
    in_process_worker: Worker, fast_settings: Settings
) -> None:
    """As Node's timer would have closed it, though the heartbeat's next tick is not there yet."""
    fast_settings.SIOLESS = {**fast_settings.SIOLESS, "PING_INTERVAL": 1.0, "PING_TIMEOUT": 0.2}
    sid = await handshake()
    await asyncio.sleep(0.6)  # a tick within half a ping interval of the handshake pings no one
    reporter = await get_channel_layer().new_channel()
    await get_channel_layer().group_send(HEARTBEAT_GROUP, {"type": messages.PING, "tick": 1, "reporter": reporter})
    assert await poll(sid) == ["2"]  # the ping
    await asyncio.sleep(0.3)  # unanswered past PING_TIMEOUT
    # answered at once, not after the GET's own wait (PING_INTERVAL + PING_TIMEOUT)
    unknown = await request("GET", f"&sid={sid}", timeout=0.8)
    assert unknown == (400, b'{"code":1,"message":"Session ID unknown"}')


@pytest.mark.parametrize("first", ["3probe", "garbage"])
async def test_an_upgrade_that_does_not_probe_first_is_closed(in_process_worker: Worker, first: str) -> None:
    sid = await handshake()
    websocket = WebsocketCommunicator(UpgradeConsumer.as_asgi(), f"/socket.io/?EIO=4&transport=websocket&sid={sid}")
    assert (await websocket.connect(timeout=5))[0]
    await websocket.send_to(text_data=first)
    assert (await websocket.receive_output(5))["type"] == "websocket.close"
    await websocket.disconnect()
