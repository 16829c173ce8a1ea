"""The MessagePack parser (``SIOLESS["PARSER"] = "msgpack"``) end to end, in both topologies: the
stock socket.io-client with socket.io-msgpack-parser runs the JSON client's scenarios and sees the
same, and python-socketio's client with ``serializer="msgpack"`` does what its JSON client does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio

from tests import test_e2e_node as json_scenarios
from tests import test_e2e_python as python_scenarios
from tests.support.processes import development_server
from tests.support.topologies import Topology, topology_of_its_own

pytestmark = pytest.mark.e2e

MSGPACK = {"SIOLESS_TEST_PARSER": "msgpack"}


@pytest.fixture(scope="module", params=["production", "development"])
def topology(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """A topology whose servers speak MessagePack, on a database of its own."""
    if request.param == "production":
        request.getfixturevalue("django_db_setup")
        with topology_of_its_own("msgpack", **MSGPACK) as production:
            yield production
        return
    directory: Path = tmp_path_factory.mktemp("msgpack")
    with development_server("msgpack-runserver", directory, **MSGPACK) as url:
        yield Topology(urls=[url], balancer=url, env=MSGPACK)


@pytest.fixture(params=["websocket", "default", "polling"])
def transports(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_connect_events_acks_binary_and_namespaces(topology: Topology, transports: str) -> None:
    json_scenarios.test_connect_events_acks_binary_and_namespaces(topology, transports)


def test_server_calls_the_client_with_and_without_timeout(topology: Topology, transports: str) -> None:
    json_scenarios.test_server_calls_the_client_with_and_without_timeout(topology, transports)


def test_rooms_broadcasts_skip_and_server_disconnect(topology: Topology, transports: str) -> None:
    json_scenarios.test_rooms_broadcasts_skip_and_server_disconnect(topology, transports)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_python_socketio_in_msgpack_mode(topology: Topology, transport: str) -> None:
    await python_scenarios.events_acks_binary_and_a_custom_namespace(topology, transport, serializer="msgpack")


async def test_a_client_of_the_default_parser_is_closed_as_a_protocol_breaker(topology: Topology) -> None:
    """Every client of a server speaks its parser, as with Node's ``parser`` option."""
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(topology.urls[0], transports=["websocket"], wait_timeout=5)
    await client.disconnect()
