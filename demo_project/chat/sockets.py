"""The demo's handlers: a chat with rooms, found by sioless like ``admin.py``."""

from typing import Any

from sioless import Socket, sio


@sio.on("connect")
async def connect(socket: Socket, auth: dict[str, Any]) -> None:
    socket.data["name"] = str(auth.get("name") or f"guest-{socket.sid[:4]}")[:40]


@sio.on("join")
async def join(socket: Socket, room: str) -> list[str]:
    await socket.ajoin(room)
    await sio.aemit("joined", {"room": room, "name": socket.data["name"]}, to=room)
    return sorted(socket.rooms - {socket.sid})


@sio.on("say")
async def say(socket: Socket, room: str, text: str) -> str:
    await sio.aemit("said", {"room": room, "name": socket.data["name"], "text": text}, to=room)
    return "ok"


@sio.on("ping")
async def ping(socket: Socket) -> str:
    return "pong"
