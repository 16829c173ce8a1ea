"""What connection state recovery's packet log costs a sent event: the sending process's CPU for
the Redis script that logs it, and what Redis keeps for it.

Usage (the machine's Redis on 127.0.0.1:6379; keys of its own, deleted afterwards):

    DJANGO_SETTINGS_MODULE=tests.settings python -m bench.packet_log
"""

from __future__ import annotations

import asyncio
import time
import uuid

import django
import redis

EVENTS = 20_000
#: A chat message as the demo sends it: 76 bytes.
FRAMES: list[str | bytes] = ['2["said",{"room":"lobby","name":"alice","text":"hello there, how are you?"}]']


async def measure() -> None:
    from channels.layers import get_channel_layer
    from django.test import override_settings

    from sioless.names import room_group
    from sioless.recovery import RedisPacketLog

    layer = get_channel_layer()
    layer.prefix = f"siobench-log-{uuid.uuid4().hex[:8]}"
    log = RedisPacketLog(layer)
    targets = [room_group("/", "lobby")]
    with override_settings(SIOLESS={"CONNECTION_STATE_RECOVERY": True}):
        cpu, wall = time.process_time(), time.monotonic()
        for _ in range(EVENTS):
            await log.append("/", FRAMES, targets, [])
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    keys = redis.Redis(host="127.0.0.1", port=6379)
    (stream,) = keys.scan_iter(f"{layer.prefix}*")
    kept = keys.memory_usage(stream, samples=0) or 0
    keys.delete(stream)
    print(f"{EVENTS} events of {len(FRAMES[0])} bytes logged:")
    print(f"  sender CPU {cpu / EVENTS * 1e6:.0f} µs an event, {wall / EVENTS * 1e6:.0f} µs wall (one round trip)")
    print(f"  Redis keeps {kept / EVENTS:.0f} bytes an event")


if __name__ == "__main__":
    django.setup()
    asyncio.run(measure())
