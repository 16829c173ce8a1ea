"""The benchmark's floor servers speak what its load client speaks (``make bench`` compares sioless
with them; a floor that answered nothing would read as a free server)."""

from __future__ import annotations

import pytest
import redis

from bench.run import SERVERS, run_phase

pytestmark = pytest.mark.e2e

FLOORS = ["daphne floor (bare ASGI app)", "Channels floor (stock consumer and layer)"]


@pytest.mark.parametrize("name", FLOORS)
def test_a_floor_answers_every_echo_and_delivers_every_broadcast(name: str) -> None:
    layer = redis.Redis(host="127.0.0.1", port=6379)
    with SERVERS[name]() as topology:
        echoed = next(run_phase(topology, layer, "echo", 3, 5))
        broadcasting = run_phase(topology, layer, "broadcast", 4, 3)
        filled, broadcast = next(broadcasting), next(broadcasting)
    assert (echoed.result["events"], echoed.result["lost"]) == (15, 0)
    assert filled.result["joined"] == 4
    assert (broadcast.result["deliveries"], broadcast.result["lost"]) == (12, 0)
