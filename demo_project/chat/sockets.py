"""The demo's handlers, found by sioless like ``admin.py``: a chat with rooms, presence and a typing
indicator, and one canvas everybody draws on."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from sioless import Socket, sio

from .models import Message, Stroke

# The socket.io Admin UI (served at /admin-ui/): open to anyone in development, to staff users of
# Django's admin otherwise.
sio.instrument(auth=False if settings.DEBUG else None)

NAME_LENGTH = 40
ROOM_LENGTH = 40
MESSAGE_LENGTH = 2000
STROKE_POINTS = 500
CANVAS_STROKES = 300
#: Messages of a room a newcomer is shown, and how many the database keeps a room.
HISTORY = 50
MESSAGES_KEPT = 200


def clean(text: Any, length: int) -> str:
    """``text`` as a trimmed string of at most ``length`` characters."""
    return str(text if text is not None else "").strip()[:length]


def is_point(value: Any) -> bool:
    """Whether ``value`` is an ``[x, y]`` pair of numbers."""
    return isinstance(value, list) and len(value) == 2 and all(isinstance(n, int | float) for n in value)


def chat_rooms(socket: Socket) -> set[str]:
    """The chat rooms ``socket`` is in (every socket is also in the room named by its sid)."""
    return socket.rooms - {socket.sid}


async def announce_presence(room: str) -> dict[str, Any]:
    """Tell everyone in ``room`` who is in it; return what was told."""
    members = sorted(str(member.auth.get("name", "")) for member in await sio.afetch_sockets(to=room))
    presence = {"room": room, "members": members}
    await sio.aemit("presence", presence, to=room)
    return presence


def history(room: str) -> list[dict[str, str]]:
    """The last ``HISTORY`` messages of ``room``, oldest first."""
    latest = Message.objects.filter(room=room).order_by("-said", "-id")[:HISTORY]
    return [{"room": room, "name": message.name, "text": message.text} for message in reversed(latest)]


@sio.on("connect")
async def connect(socket: Socket, auth: dict[str, Any] | None) -> None:
    """Name the socket: the signed-in Django user's name, else the one the page asked for."""
    asked = auth.get("name") if isinstance(auth, dict) else None
    name = socket.user.get_username() if socket.user.is_authenticated else clean(asked, NAME_LENGTH)
    socket.auth = {"name": name or f"guest-{socket.sid[:4]}"}


@sio.on("whoami")
async def whoami(socket: Socket) -> str:
    """The name this socket goes by."""
    return str(socket.auth["name"])


@sio.on("join")
async def join(socket: Socket, room: Any) -> dict[str, Any]:
    """Leave the current chat room for ``room``; answer with the room's name and members."""
    room = clean(room, ROOM_LENGTH)
    if not room:
        return {"error": "a room needs a name"}
    for previous in chat_rooms(socket) - {room}:
        await socket.aleave(previous)
        await announce_presence(previous)
    await socket.ajoin(room)
    presence = await announce_presence(room)
    return {**presence, "history": await database_sync_to_async(history)(room)}


@sio.on("say")
def say(socket: Socket, room: Any, text: Any) -> bool:
    """Keep ``text`` in ``room``'s history (its last ``MESSAGES_KEPT``) and send it to everyone in
    the room (the sender included); False if not in it."""
    text = clean(text, MESSAGE_LENGTH)
    if room not in chat_rooms(socket) or not text:
        return False
    kept = Message.objects.create(room=room, name=socket.auth["name"], text=text)
    sio.emit("said", {"room": room, "name": kept.name, "text": kept.text}, to=room)
    older = Message.objects.filter(room=room).order_by("-said", "-id").values_list("id", flat=True)[MESSAGES_KEPT:]
    Message.objects.filter(id__in=list(older)).delete()
    return True


@sio.on("typing")
async def typing(socket: Socket, room: Any, active: Any) -> None:
    """Tell the others in ``room`` that this socket started or stopped typing."""
    if room in chat_rooms(socket):
        news = {"room": room, "name": socket.auth["name"], "active": bool(active)}
        await sio.aemit("typing", news, to=room, skip=socket)


@sio.on("pointer")
async def pointer(socket: Socket, x: Any, y: Any) -> None:
    """Show this socket's pointer (canvas coordinates from 0 to 1) to everyone else."""
    if is_point([x, y]):
        await sio.aemit("pointer", {"id": socket.sid, "name": socket.auth["name"], "x": x, "y": y}, skip=socket)


@sio.on("stroke")
def stroke(socket: Socket, drawn: Any) -> None:
    """Keep a stroke (``{"color", "points": [[x, y], ...]}``) and show it on everyone else's canvas.
    A sync handler: it uses the ORM as a view would."""
    if not isinstance(drawn, dict) or not isinstance(drawn.get("points"), list):
        return
    points = [point for point in drawn["points"][:STROKE_POINTS] if is_point(point)]
    kept = Stroke.objects.create(color=clean(drawn.get("color"), 20), points=points)
    sio.emit("stroke", {"color": kept.color, "points": kept.points}, skip=socket)


@sio.on("canvas")
def canvas(socket: Socket) -> list[dict[str, Any]]:
    """The strokes on the canvas so far (the latest ``CANVAS_STROKES``), oldest first."""
    latest = Stroke.objects.order_by("-drawn", "-id")[:CANVAS_STROKES]
    return [{"color": kept.color, "points": kept.points} for kept in reversed(latest)]


@sio.on("clear")
def clear(socket: Socket) -> None:
    """Wipe the shared canvas, for everyone."""
    Stroke.objects.all().delete()
    sio.emit("cleared")


@sio.on("latency")
async def latency(socket: Socket) -> None:
    """Answer at once: the page measures the round trip of this ack."""


@sio.on("disconnect")
async def disconnect(socket: Socket, reason: str) -> None:
    """Take the socket's pointer off the others' canvases and out of its rooms' presence (in
    this handler ``socket.rooms`` still names the rooms the socket was in)."""
    await sio.aemit("pointer_gone", {"id": socket.sid}, skip=socket)
    for room in chat_rooms(socket):
        await announce_presence(room)
