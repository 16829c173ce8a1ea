"""Handlers the tests' clients talk to; registered through SIOLESS['HANDLER_MODULES']."""

import asyncio
import re
from typing import Any

from sioless import Ack, AckTimeout, ConnectionRefused, Namespace, Socket, sio

WATCHERS = "watchers"


@sio.on("connect")
async def connect(socket: Socket, auth: dict[str, Any]) -> None:
    if auth.get("greet"):
        await socket.aemit("welcome", 1)
        await socket.aemit("welcome", 2)
    if auth.get("refuse"):
        raise ConnectionRefused("refused", {"reason": auth["refuse"]})
    if auth.get("watch"):
        await socket.ajoin(WATCHERS)


@sio.on("disconnect")
async def disconnect(socket: Socket, reason: str) -> None:
    await sio.aemit("gone", {"sid": socket.sid, "reason": reason}, to=WATCHERS)


@sio.on("whoami")
def whoami(socket: Socket) -> dict[str, Any]:
    """A sync handler: touches the user, as ORM code would."""
    return {
        "sid": socket.sid,
        "namespace": socket.namespace,
        "auth": socket.auth,
        "user": socket.user.get_username() if socket.user.is_authenticated else None,
        "query": socket.handshake.query,
        "address": socket.handshake.address,
        "has_cookie_header": "cookie" in socket.handshake.headers,
    }


@sio.on("handshake")
def handshake(socket: Socket) -> dict[str, Any]:
    """What a handler sees of the handshake and auth while the socket lives."""
    return {"headers": socket.handshake.headers, "query": socket.handshake.query, "auth": socket.auth}


@sio.on("fetch_room")
async def fetch_room(socket: Socket, room: str) -> list[str]:
    return [found.sid for found in await sio.afetch_sockets(to=room)]


@sio.on("later")
async def later(socket: Socket, value: Any, *, ack: Ack) -> None:
    """Takes the ack into its own hands: answers from another task, 200 ms later."""

    async def answer() -> None:
        await asyncio.sleep(0.2)
        await ack.asend(value)

    asyncio.get_running_loop().create_task(answer())


@sio.on("never")
def never(socket: Socket, *, ack: Ack) -> str:
    """Declines to acknowledge: its return value is no ack."""
    return "not an ack"


@sio.on("echo")
async def echo(socket: Socket, *args: Any) -> tuple[Any, ...]:
    return args


@sio.on("echo_sync")
def echo_sync(socket: Socket, *args: Any) -> tuple[Any, ...]:
    return args


@sio.on("no_ack")
async def no_ack(socket: Socket) -> None:
    await socket.aemit("no_ack_done")


@sio.on("join")
async def join(socket: Socket, room: str) -> list[str]:
    await socket.ajoin(room)
    return sorted(socket.rooms - {socket.sid})


@sio.on("leave")
async def leave(socket: Socket, room: str) -> list[str]:
    await socket.aleave(room)
    return sorted(socket.rooms - {socket.sid})


@sio.on("broadcast")
async def broadcast(socket: Socket, to: str | list[str], payload: Any, options: dict[str, Any] | None = None) -> str:
    options = options or {}
    skip: list[Any] = list(options.get("skip_rooms", []))
    if options.get("skip_self"):
        skip.append(socket)
    await sio.aemit("news", payload, to=to, skip=skip)
    return "sent"


@sio.on("close_room")
async def close_room(socket: Socket, room: str) -> str:
    await sio.aclose_room(room)
    return "closed"


@sio.on("ask_me")
async def ask_me(socket: Socket, timeout: float) -> dict[str, Any]:
    try:
        return {"answer": await socket.acall("question", 41, timeout=timeout)}
    except AckTimeout:
        return {"timeout": True}


@sio.on("ask_me_later")
async def ask_me_later(socket: Socket) -> str:
    async def on_answer(*args: Any) -> None:
        await socket.aemit("answered", list(args))

    await socket.aemit("question", 1, callback=on_answer)
    return "asked"


@sio.on("kick_me")
async def kick_me(socket: Socket) -> None:
    await socket.adisconnect()


@sio.on("seq")
async def seq(socket: Socket, n: int) -> None:
    """Numbered events: notes any that comes twice, late or not at all (kept across worker restarts)."""
    expected = socket.data.get("seq_next", 0)
    socket.data["seq_next"] = n + 1
    if n != expected:
        socket.data["seq_errors"] = [*socket.data.get("seq_errors", []), [expected, n]]


@sio.on("seq_report")
async def seq_report(socket: Socket) -> dict[str, Any]:
    errors = socket.data.get("seq_errors", [])
    return {"count": socket.data.get("seq_next", 0), "in_order": not errors, "errors": errors[:5]}


@sio.on("record")
def record(socket: Socket, n: int) -> None:
    """A sync handler writing with the ORM: one row per event it took."""
    from tests.app.models import Handled

    Handled.objects.create(sid=socket.sid, n=n)


@sio.on("set_data")
async def set_data(socket: Socket, key: str, value: Any) -> None:
    socket.data[key] = value


@sio.on("store_now")
async def store_now(socket: Socket) -> None:
    """What the wire encodes (DjangoJSONEncoder) and plain ``json`` does not: a datetime."""
    from django.utils import timezone

    socket.data["at"] = timezone.now()


@sio.on("store_unstorable")
async def store_unstorable(socket: Socket) -> None:
    """What no encoder takes: the change is not saved, and nothing else stops."""
    socket.data["unstorable"] = object()


@sio.on("get_data")
def get_data(socket: Socket) -> dict[str, Any]:
    """Sync, so it answers after the sync handlers of earlier events."""
    return {key: value for key, value in socket.data.items() if not key.startswith("seq")}


@sio.on("*")
async def anything(socket: Socket, event: str, *args: Any) -> dict[str, Any]:
    return {"caught": event, "args": list(args)}


class Custom(Namespace):
    """A class-based namespace that wants a token."""

    async def on_connect(self, socket: Socket, auth: dict[str, Any]) -> None:
        if auth.get("token") != "secret":
            raise ConnectionRefused("bad token", {"code": 401})

    async def on_hello(self, socket: Socket, name: str) -> str:
        return f"hello {name} from {socket.namespace}"


sio.register_namespace(Custom("/custom"))


@sio.on("where", namespace=re.compile(r"/dyn-\d+"))
async def where(socket: Socket) -> str:
    return socket.namespace


@sio.on("record_slow")
def record_slow(socket: Socket, n: int) -> None:
    """A sync handler that takes a while: events queue behind it in the worker."""
    import time

    from tests.app.models import Handled

    time.sleep(0.05)
    Handled.objects.create(sid=socket.sid, n=n)


@sio.event
def django_values(socket: Socket) -> dict[str, Any]:
    """Named by its function; returns what Django code returns, which DjangoJSONEncoder encodes."""
    import datetime
    import decimal
    import uuid

    from django.utils.translation import gettext_lazy

    return {
        "when": datetime.datetime(2026, 12, 1, 20, 30, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 12, 1),
        "price": decimal.Decimal("9.90"),
        "id": uuid.UUID(int=1),
        "label": gettext_lazy("Yes"),
    }


@sio.event
def unencodable(socket: Socket) -> object:
    """Returns what no JSON encoder takes: logged, and no ack is sent."""
    return object()


@sio.use(namespace="/guarded")
def token_required(socket: Socket, auth: dict[str, Any]) -> None:
    """A connect middleware: refuses a connection without the token."""
    if auth.get("token") != "secret":
        raise ConnectionRefused("token required")
    socket.data["steps"] = ["token_required"]


@sio.use(namespace="/guarded")
async def second_middleware(socket: Socket, auth: dict[str, Any]) -> bool:
    socket.data["steps"].append("second_middleware")
    return auth.get("refuse_late") is None  # False refuses


@sio.on("connect", namespace="/guarded")
async def guarded_connect(socket: Socket, auth: dict[str, Any]) -> None:
    socket.data["steps"].append("connect")


@sio.event(namespace="/guarded")
async def steps(socket: Socket) -> list[str]:
    return list(socket.data["steps"])


_reminders: set[asyncio.Task[None]] = set()


@sio.on("remind_me")
async def remind_me(socket: Socket, delay: float, value: Any) -> str:
    """Sends ``reminder`` to this very socket ``delay`` seconds later, connected or not by then."""

    async def remind() -> None:
        await asyncio.sleep(delay)
        await socket.aemit("reminder", value)

    task = asyncio.get_running_loop().create_task(remind())
    _reminders.add(task)
    task.add_done_callback(_reminders.discard)
    return "later"


@sio.use(namespace="/slow-guard")
async def slow_token_required(socket: Socket, auth: dict[str, Any]) -> None:
    """A middleware that takes its time (``slow``) before it refuses a connection without the token."""
    if auth.get("slow"):
        await asyncio.sleep(0.5)
    if auth.get("token") != "secret":
        raise ConnectionRefused("token required")


@sio.on("connect", namespace="/slow-guard")
async def slow_guard_connect(socket: Socket, auth: dict[str, Any]) -> None:
    await socket.ajoin("guarded-room")


@sio.on("redelivered")
async def redelivered(socket: Socket) -> bool:
    """Whether this event may have been handled before (its worker died as it ran)."""
    return socket.redelivered


@sio.on("disconnect", namespace="/presence")
async def presence_disconnect(socket: Socket, reason: str) -> None:
    """Who is still in the namespace, as the database has it: the one leaving is not."""
    listed = sorted(found.sid for found in await sio.afetch_sockets(namespace="/presence"))
    await sio.aemit("present", listed, namespace="/presence")
