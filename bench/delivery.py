"""sioless's own CPU for a broadcast delivery in development mode, in one process and without
daphne: ``sio.aemit`` to a room through the in-memory layer, each member's consumer taking it and
sending its WebSocket frame to an ASGI ``send`` that only counts. What is left of a development
delivery's cost once daphne's floor (``make bench``) is taken away.

Usage (a database of its own in a temporary directory; prints the best and the median round):

    python -m bench.delivery [RECEIVERS] [BROADCASTS] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import django

QUERY = b"EIO=4&transport=websocket"


async def measure(receivers: int, broadcasts: int, rounds: int) -> list[float]:
    """µs of CPU a delivery, a figure a round."""
    from sioless.consumers import EngineConsumer
    from sioless.names import room_group
    from sioless.server import sio

    expected = receivers * broadcasts
    delivered = 0
    all_delivered = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:  # the ASGI server: counts the events' frames
        nonlocal delivered
        if message.get("text", "").startswith("42"):
            delivered += 1
            if delivered == expected:
                all_delivered.set_result(None)

    consumers, serving = [], []
    for _ in range(receivers):
        consumer, events = EngineConsumer(), asyncio.Queue[dict[str, Any]]()
        events.put_nowait({"type": "websocket.connect"})
        scope = {"type": "websocket", "path": "/socket.io/", "query_string": QUERY, "headers": []}
        serving.append(asyncio.ensure_future(consumer(scope, events.get, send)))
        consumers.append(consumer)
    await asyncio.sleep(1)  # connected: the embedded worker opened their sessions
    room = room_group("/", "bench")
    for consumer in consumers:
        await consumer.channel_layer.group_add(room, consumer.channel_name)
        consumer.groups.add(room)
    figures = []
    for _ in range(rounds):
        delivered, all_delivered = 0, asyncio.get_running_loop().create_future()
        cpu = time.process_time()
        for n in range(broadcasts):
            await sio.aemit("news", n, to="bench")
        await asyncio.wait_for(all_delivered, 60)
        figures.append(1e6 * (time.process_time() - cpu) / expected)
    return figures


def main(receivers: int = 500, broadcasts: int = 100, rounds: int = 15) -> None:
    with tempfile.TemporaryDirectory() as directory:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="tests.settings_dev",
            SIOLESS_TEST_SQLITE=f"{directory}/db.sqlite3",
            SIOLESS_TEST_LOG_LEVEL="WARNING",
        )
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        figures = asyncio.run(measure(receivers, broadcasts, rounds))
    print(
        f"{receivers} receivers x {broadcasts} broadcasts, {rounds} rounds: CPU µs a delivery, "
        f"best {min(figures):.1f}, median {statistics.median(figures):.1f}"
    )
    os._exit(0)  # the consumers and the embedded worker are left running


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
