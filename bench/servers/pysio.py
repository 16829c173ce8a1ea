"""python-socketio's AsyncServer on uvicorn with the benchmark's handlers (those of
tests/handlers.py that the benchmark uses), for comparison.

Usage: SIOLESS_BENCH_PING=<interval s>,<timeout s> uvicorn bench.servers.pysio:app --port <port>

With ``SIOLESS_BENCH_REDIS_URL`` (``redis://`` or ``redis+sentinel://``), the server is one of
several sharing rooms and emits through Redis: python-socketio's ``AsyncRedisManager``, as a
deployment of several processes has it.
"""

from __future__ import annotations

import os
from typing import Any

import socketio

interval, timeout = (float(value) for value in os.environ.get("SIOLESS_BENCH_PING", "25,30").split(","))
redis_url = os.environ.get("SIOLESS_BENCH_REDIS_URL")
manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
server = socketio.AsyncServer(async_mode="asgi", ping_interval=interval, ping_timeout=timeout, client_manager=manager)
app = socketio.ASGIApp(server)


@server.on("echo")
async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
    return args


@server.on("join")
async def join(sid: str, room: str) -> list[str]:
    await server.enter_room(sid, room)
    return sorted(set(server.rooms(sid)) - {sid})


@server.on("broadcast")
async def broadcast(sid: str, to: str, payload: Any, options: Any = None) -> str:
    await server.emit("news", payload, to=to)
    return "sent"
