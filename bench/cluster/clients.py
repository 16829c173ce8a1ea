"""The load client of the cluster check, run on its own host: python-socketio clients through the
balancer (half WebSocket, half polling, reconnecting by themselves as stock clients do), each
sending an acked echo every half second. Prints a JSON line a second: how many clients are
connected, how many got an ack within the last second, the events acked and failed so far, and
the round trip (ms) of each echo acked in that second, by transport.

Usage: python -m bench.cluster.clients <url> <clients> <seconds>
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import socketio

#: Seconds between two echoes of a client, and how long one waits for its ack.
EVERY = 0.5
ACK_WAIT = 5.0


@dataclass
class Echoer:
    client: socketio.AsyncClient
    transport: str
    acked: int = 0
    failed: int = 0
    last_ack: float = 0.0
    disconnects: int = 0
    #: Round trips (ms) of the echoes acked since the last report.
    round_trips: list[float] = field(default_factory=list)

    async def run(self, until: float) -> None:
        n = 0
        while time.monotonic() < until:
            n += 1
            sent = time.monotonic()
            try:
                if await self.client.call("echo", n, timeout=ACK_WAIT) == n:
                    self.acked += 1
                    self.last_ack = time.monotonic()
                    self.round_trips.append(round((self.last_ack - sent) * 1000, 2))
            except Exception:  # disconnected or timed out: not acknowledged
                self.failed += 1
            await asyncio.sleep(EVERY)


async def main(url: str, count: int, seconds: float) -> None:
    echoers = []
    sessions = []
    for n in range(count):
        # Each client its own cookies, as browsers have them, kept for the balancer's address too
        # (aiohttp's default jar refuses cookies of IP addresses): a sticky balancer's cookie.
        sessions.append(aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))
        client = socketio.AsyncClient(
            reconnection=True, reconnection_delay=0.5, reconnection_delay_max=2, http_session=sessions[-1]
        )
        transport = "websocket" if n % 2 else "polling"
        echoer = Echoer(client, transport)
        client.on("disconnect", lambda *reason, e=echoer: setattr(e, "disconnects", e.disconnects + 1))
        await client.connect(url, transports=[transport], wait_timeout=20)
        echoers.append(echoer)
    until = time.monotonic() + seconds
    running = [asyncio.ensure_future(echoer.run(until)) for echoer in echoers]
    while time.monotonic() < until:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        report = {
            "connected": sum(1 for e in echoers if e.client.connected),
            "serving": sum(1 for e in echoers if now - e.last_ack < 1.0 + EVERY),
            "acked": sum(e.acked for e in echoers),
            "failed": sum(e.failed for e in echoers),
            "disconnects": sum(e.disconnects for e in echoers),
            "round_trips_ms": {
                transport: [ms for e in echoers if e.transport == transport for ms in e.round_trips]
                for transport in ("websocket", "polling")
            },
        }
        for echoer in echoers:
            echoer.round_trips = []
        print(json.dumps(report), flush=True)
    await asyncio.gather(*running)
    for echoer in echoers:
        with contextlib.suppress(Exception):
            await echoer.client.disconnect()
    for session in sessions:
        await session.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
