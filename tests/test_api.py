"""The calls socket.io and python-socketio users reach for, with real clients: ``@sio.event``,
connect middlewares, Django's JSON values, server-level calls with acknowledgements, and
fetched sockets that act, from any process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
import socketio
from channels.db import database_sync_to_async
from django.db import connections

from sioless import AckTimeout, SocketGone, sio
from tests.support.clients import Recorder, refusal, sio_client
from tests.support.topologies import Topology

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["production", "development"])
def topology(request: pytest.FixtureRequest) -> Topology:
    return request.getfixturevalue(request.param)


@pytest.fixture(autouse=True)
async def closing_the_database_connections_of_sio() -> AsyncIterator[None]:
    """``sio.afetch_sockets`` and the calls read the database in Django's thread: close what it
    opened, so that the test database can be dropped at the end."""
    yield
    await database_sync_to_async(connections.close_all)()


async def test_an_event_handler_named_by_its_function_returns_django_values(topology: Topology) -> None:
    async with sio_client(topology.urls[0]) as client:
        assert await client.call("django_values", timeout=5) == {
            "when": "2026-12-01T20:30:00Z",
            "day": "2026-12-01",
            "price": "9.90",
            "id": "00000000-0000-0000-0000-000000000001",
            "label": "Yes",
        }


async def test_an_ack_that_cannot_be_encoded_is_logged_with_its_handler_and_the_connection_goes_on(
    development: Topology,
) -> None:
    async with sio_client(development.urls[0]) as client:
        with pytest.raises(socketio.exceptions.TimeoutError):
            await client.call("unencodable", timeout=1)
        assert await client.call("echo", "still here", timeout=5) == "still here"
    log = development.processes["runserver"].log()
    assert "handler tests.handlers.unencodable of event 'unencodable' in namespace /" in log
    assert "returned an ack that cannot be sent" in log


async def test_connect_middlewares_run_in_order_before_the_connect_handler_and_may_refuse(
    development: Topology,
) -> None:
    url = development.urls[0]
    assert await refusal(url, namespaces=["/guarded"]) == {"message": "token required"}
    late = await refusal(url, namespaces=["/guarded"], auth={"token": "secret", "refuse_late": True})
    assert late == {"message": "Connection refused"}
    async with sio_client(url, namespaces=["/guarded"], auth={"token": "secret"}) as client:
        steps = await client.call("steps", namespace="/guarded", timeout=5)
    assert steps == ["token_required", "second_middleware", "connect"]
    async with sio_client(url) as client:  # another namespace's middlewares do not run for "/"
        assert await client.call("echo", 1, timeout=5) == 1


@contextlib.asynccontextmanager
async def answering_room(urls: list[str], room: str) -> AsyncIterator[list[socketio.AsyncClient]]:
    """Three clients in ``room``, spread over ``urls``: two answer "question" (n -> 2n), the last
    does not answer at all."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for n in range(3):
            client = await stack.enter_async_context(sio_client(urls[n % len(urls)]))
            if n < 2:
                client.on("question", lambda value, n=n: {"double": 2 * value, "client": n})
            else:
                client.on("question", never_answer)  # without a handler, python-socketio acks with nothing
            await client.call("join", room, timeout=5)
            clients.append(client)
        yield clients


async def never_answer(*args: object) -> None:
    await asyncio.sleep(3600)


async def test_a_server_call_from_another_process_returns_the_clients_ack(production: Topology) -> None:
    """pytest is the other process: it reaches clients on both daphne processes through Redis."""
    async with answering_room(production.urls, "asked") as clients:
        answering, silent = clients[0], clients[2]
        answer = await sio.acall("question", 21, to=answering.get_sid(), timeout=5)
        assert answer == {"double": 42, "client": 0}
        with pytest.raises(AckTimeout):
            await sio.acall("question", 1, to=silent.get_sid(), timeout=1)
        with pytest.raises(SocketGone):
            await sio.acall("question", 1, to="no-such-socket", timeout=1)
        with pytest.raises(AckTimeout) as late:
            await sio.acall_all("question", 5, to="asked", timeout=1.5)
        assert late.value.answers == {
            clients[0].get_sid(): {"double": 10, "client": 0},
            clients[1].get_sid(): {"double": 10, "client": 1},
        }
        await silent.disconnect()  # a socket that goes is left out, not waited for
        answers = await sio.acall_all("question", 4, to=["asked", clients[0].get_sid()], timeout=5)
        assert sorted(answer["client"] for answer in answers.values()) == [0, 1]  # each asked once


async def test_a_view_calls_the_sockets_of_a_room(development: Topology) -> None:
    async with answering_room(development.urls, "asked-by-a-view") as clients, aiohttp.ClientSession() as http:
        body = {"event": "question", "args": [3], "to": "asked-by-a-view", "timeout": 1.5}
        async with http.post(f"{development.urls[0]}/call/", json=body) as response:
            result = await response.json()
        assert result["late"] is True
        assert result["answers"] == {
            clients[0].get_sid(): {"double": 6, "client": 0},
            clients[1].get_sid(): {"double": 6, "client": 1},
        }


async def test_fetched_sockets_emit_join_leave_and_disconnect_wherever_they_are_served(
    production: Topology,
) -> None:
    async with sio_client(production.urls[0]) as a, sio_client(production.urls[1]) as b:
        news = [Recorder(a, "news"), Recorder(b, "news")]
        gone: asyncio.Event = asyncio.Event()
        b.on("disconnect", lambda *reason: gone.set())
        for client in (a, b):
            await client.call("join", "fetched", timeout=5)
        fetched = {socket.sid: socket for socket in await sio.afetch_sockets(to="fetched")}
        assert set(fetched) == {a.get_sid(), b.get_sid()}
        for socket in fetched.values():
            await socket.aemit("news", f"for {socket.sid}")
        assert [await recorder.next("news") for recorder in news] == [f"for {a.get_sid()}", f"for {b.get_sid()}"]
        await fetched[a.get_sid()].ajoin("joined-remotely")
        await until_in_room("joined-remotely", {a.get_sid()})
        await fetched[a.get_sid()].aleave("joined-remotely")
        await until_in_room("joined-remotely", set())
        await fetched[b.get_sid()].adisconnect()
        await asyncio.wait_for(gone.wait(), 5)
        await until_in_room("fetched", {a.get_sid()})


async def until_in_room(room: str, sids: set[str], timeout: float = 5.0) -> None:
    """Wait until the database has exactly ``sids`` in ``room`` (commands are carried out by the
    sockets' workers, after the call that sent them has returned)."""
    async with asyncio.timeout(timeout):
        while {socket.sid for socket in await sio.afetch_sockets(to=room)} != sids:  # noqa: ASYNC110 (other processes)
            await asyncio.sleep(0.1)
