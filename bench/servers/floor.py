"""The floor of any server on daphne: a bare ASGI app (no Django, no Channels, no state kept
anywhere but in memory) that speaks just the Engine.IO/Socket.IO frames the benchmark's load
client needs: the handshake, CONNECT of the main namespace, and the acked events ``echo``,
``join`` and ``broadcast`` (to the room's members in this process). What daphne, Twisted and
autobahn cost per connection and per frame; sioless runs on them in both modes.

Usage: daphne -p <port> bench.servers.floor:app
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]
#: Joins the connection to a room.
Join = Callable[[str], Awaitable[None]]
#: Sends a frame to a room's members.
Broadcast = Callable[[str, str], Awaitable[None]]

#: A ping interval longer than any phase: the floor sends no pings.
OPEN = {"upgrades": [], "pingInterval": 3_600_000, "pingTimeout": 20_000, "maxPayload": 1_000_000}
#: The members' send callables, by room.
rooms: dict[str, set[Send]] = {}


async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Send) -> None:
    """One WebSocket connection (anything else is refused)."""
    if scope["type"] != "websocket":
        return
    joined: list[str] = []

    async def join(room: str) -> None:
        rooms.setdefault(room, set()).add(send)
        joined.append(room)

    try:
        while (event := await receive())["type"] != "websocket.disconnect":
            if event["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send_text(send, open_frame())
            elif event.get("text"):
                await on_frame(event["text"], send, join, broadcast)
    finally:
        for room in joined:
            rooms[room].discard(send)


async def broadcast(room: str, frame: str) -> None:
    """Send ``frame`` to the room's members in this process, one after another."""
    for member in list(rooms.get(room, ())):
        await send_text(member, frame)


def open_frame() -> str:
    """The Engine.IO handshake of a new connection."""
    return "0" + json.dumps({"sid": secrets.token_urlsafe(15), **OPEN})


async def on_frame(frame: str, send: Send, join: Join, broadcast: Broadcast) -> None:
    """Answer CONNECT and the load client's events (an event's answer is its ack)."""
    if frame == "40":
        await send_text(send, "40" + json.dumps({"sid": secrets.token_urlsafe(15)}))
        return
    if not frame.startswith("42"):
        return  # a PONG: this server sends no pings
    start = frame.index("[")
    ack_id, (event, *args) = frame[2:start], json.loads(frame[start:])
    answer: list[Any] = args
    if event == "join":
        await join(args[0])
        answer = [[args[0]]]
    elif event == "broadcast":
        await broadcast(args[0], "42" + json.dumps(["news", args[1]]))
        answer = ["sent"]
    await send_text(send, f"43{ack_id}{json.dumps(answer)}")


async def send_text(send: Send, text: str) -> None:
    await send({"type": "websocket.send", "text": text})
