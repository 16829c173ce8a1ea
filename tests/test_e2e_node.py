"""The stock socket.io-client under Node against real servers."""

from __future__ import annotations

import pytest

from tests.support.processes import run_node
from tests.support.topologies import Topology

pytestmark = pytest.mark.e2e

ODD_ROOM = "other/room,with:odd chars ✓"


@pytest.fixture(params=["production", "development"])
def topology(request: pytest.FixtureRequest) -> Topology:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["websocket", "default", "polling"])
def transports(request: pytest.FixtureRequest) -> str:
    """The clients' options: WebSocket only, socket.io-client's defaults (polling, then the
    upgrade), or polling only."""
    return str(request.param)


def urls(topology: Topology, transports: str) -> list[str]:
    """Two URLs for the clients: WebSocket-only clients go straight to the servers; the others
    through the balancer, so that a session's requests land on every server in turn."""
    direct = topology.urls if len(topology.urls) > 1 else topology.urls * 2
    return direct if transports == "websocket" else [topology.balancer] * 2


def test_an_emit_in_the_connect_handler_is_sent_once_and_acked_before_any_noop(topology: Topology) -> None:
    """socket.io-client's own test, with its defaults (polling, then the upgrade probe): a NOOP that
    releases the GET for the upgrade comes after what is due (Node's 100 ms check)."""
    seen = run_node("connectHandlerEmit", urls(topology, "default")[0], transports="default")
    assert seen["sent"] == ["0", '20["echo",null]']
    opened, connected, acked = seen["received"]  # nothing else: no NOOP before the ack
    assert (opened, connected[:2], acked) == ("open", "0{", "30[null]")


def test_connect_events_acks_binary_and_namespaces(topology: Topology, transports: str) -> None:
    seen = run_node("basics", urls(topology, transports)[0], transports=transports, parser=topology.parser)
    assert seen["transport"] == ("polling" if transports == "polling" else "websocket")
    assert seen["whoami"]["auth"] == {"token": "abc"}
    assert seen["whoami"]["query"]["room"] == "r1"
    assert seen["whoami"]["query"]["EIO"] == "4"
    assert seen["whoami"]["address"] == "127.0.0.1"
    assert seen["whoami"]["user"] is None
    assert seen["echo"] == [1, "two", {"three": [3]}]
    assert seen["echoSync"] == ["sync"]
    assert seen["bytes"] == [[0, 1, 2, 255], "hi"]
    assert seen["bytesAreBuffers"] is True
    assert seen["caught"] == {"caught": "made-up event!", "args": [7]}
    assert seen["hello"] == "hello node from /custom"
    assert seen["where"] == "/dyn-42"
    assert seen["badToken"] == {"message": "bad token", "data": {"code": 401}}
    assert seen["refused"] == {"message": "refused", "data": {"reason": "go away"}}
    assert seen["unknownNamespace"] == {"message": "Invalid namespace", "data": None}
    assert seen["unknownDynamic"] == {"message": "Invalid namespace", "data": None}


def test_server_calls_the_client_with_and_without_timeout(topology: Topology, transports: str) -> None:
    seen = run_node("calls", urls(topology, transports)[0], transports=transports, parser=topology.parser)
    assert seen["answered"] == {"answer": [42, "extra"]}
    assert seen["timedOut"] == {"timeout": True}
    assert seen["asked"] == "asked"
    assert seen["later"] == ["later", 1]


def test_rooms_broadcasts_skip_and_server_disconnect(topology: Topology, transports: str) -> None:
    seen = run_node("rooms", *urls(topology, transports), transports=transports, parser=topology.parser)
    assert seen["joined"] == {"a": ["room one"], "b": ["room one"], "c": [ODD_ROOM]}
    assert seen["left"] == []
    news = {name: [args[0] for args in received] for name, received in seen["news"].items()}
    assert news["a"] == ["to all", "not other", "two rooms once", "after b left"]
    assert news["b"] == ["to all", "not me", "not other", "two rooms once", "to b by sid"]
    assert news["c"] == ["to all", "not me", "two rooms once", "after b left"]
    assert seen["kickReason"] == "io server disconnect"
    assert [args[0] for args in seen["gone"]] == [{"sid": seen["ids"]["c"], "reason": "server namespace disconnect"}]


def test_a_thousand_events_are_handled_in_order(topology: Topology) -> None:
    assert run_node("order", topology.urls[-1]) == {"count": 1000, "in_order": True, "errors": []}


def test_a_client_disconnect_reaches_the_handler_with_its_reason(topology: Topology) -> None:
    seen = run_node("leaving", topology.urls[0])
    assert seen["seen"] == {"sid": seen["sid"], "reason": "client namespace disconnect"}
