"""The socket a handler receives: one client's connection to one namespace."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from channels.layers import BaseChannelLayer
from django.dispatch import Signal

from . import recovery, signals
from .conf import conf
from .exceptions import AckTimeout, SocketGone
from .names import room_group
from .protocol import socketio
from .protocol.engineio import Frame
from .records import DEFAULT_CALL_TIMEOUT, Handshake
from .twins import sync_twin

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from .namespaces import Namespace


#: Whether the event a handler runs for may have been handled before: set by the worker in the
#: task of each handler it runs (its context, copied into Django's thread for a sync handler).
redelivered_event: contextvars.ContextVar[bool] = contextvars.ContextVar("sioless_redelivered_event", default=False)


class Carrier(Protocol):
    """The Engine.IO connection a socket rides on, as the socket sees it (Node's ``socket.conn``)."""

    eio_sid: str
    handshake: Handshake
    user: Any
    #: Whether the connection moved from long-polling to WebSocket since its handshake.
    upgraded: bool


class SocketHost(Protocol):
    """What a socket asks of the worker that serves it."""

    @property
    def layer(self) -> BaseChannelLayer:
        """The channel layer, for the packet log of what the socket emits."""

    async def send_to(self, socket: Socket, frames: list[Frame], *, ack_id: int | None = None) -> None:
        """Send frames to the socket's client (after CONNECT, for one still connecting); the ack
        of the client's event ``ack_id``, if they are one."""

    async def join(self, socket: Socket, room: str) -> None:
        """Put the socket in a room."""

    async def leave(self, socket: Socket, room: str) -> None:
        """Take the socket out of a room."""

    async def disconnect(self, socket: Socket) -> None:
        """End the socket from the server side."""

    def run_callback(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run an ack callback or an outgoing hook in the background."""

    def send_signal(self, signal: Signal, socket: Socket, **named: Any) -> None:
        """Send one of :mod:`sioless.signals` about ``socket`` in the background."""


class SocketData(dict[str, Any]):
    """``socket.data``: a dict that notes top-level changes, so the worker saves them."""

    dirty = False

    def _changed(self) -> None:
        self.dirty = True

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other: Any) -> SocketData:  # type: ignore[override,misc]
        super().__ior__(other)
        self._changed()
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self._changed()
        return super().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        self._changed()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._changed()
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self._changed()


class Socket:
    """A client connected to a namespace, as handlers see it.

    ``data`` is free for the application and is kept across worker restarts:
    top-level changes are saved after the handler that made them returns
    (call ``socket.mark_changed()`` after changing a nested value). ``rooms``
    holds the rooms it is in, its own sid among them (in the disconnect
    handler: the rooms it was in). ``recovered`` is True when the client came
    back as this socket after a lost connection (connection state recovery).
    """

    def __init__(
        self, host: SocketHost, conn: Carrier, sid: str, namespace: str, auth: Any, handlers: Namespace
    ) -> None:
        self.sid = sid
        self.namespace = namespace
        self.auth = auth
        self.data = SocketData()
        self.rooms: set[str] = {sid}
        #: When it came into each of its rooms but its own (ms since the epoch): what a recovery
        #: sends again of a room's events starts there.
        self.joined: dict[str, int] = {}
        self.connected = False
        self.persisted = False
        self.saving = False
        self.recovered = False
        #: Whether ``auth`` is what the client connected with: False for a socket a worker revived
        #: without it (``KEEP_AUTH`` off, ``SECRET_KEY`` changed), whose ``auth`` is ``{}``.
        self.auth_kept = True
        #: With recovery on: the private id the client recovers this socket with (known in the
        #: worker that connected it), and its digest (kept in the database).
        self.pid: str | None = None
        self.pid_digest: str | None = None
        #: Frames sent while the connect handler runs, sent after the CONNECT packet (None after it).
        self.sent_before_connect: list[Frame] | None = None
        self.handlers = handlers
        #: The Engine.IO connection carrying it (Node's ``socket.conn``).
        self.conn = conn
        self._host = host
        # Ids start at random so acks meant for a previous worker's calls match nothing.
        self._ack_ids = itertools.count(secrets.randbelow(2**31))
        self._pending_acks: dict[int, Callable[..., Any] | asyncio.Future[list[Any]]] = {}

    def __repr__(self) -> str:
        return f"<Socket {self.sid} {self.namespace}>"

    @property
    def eio_sid(self) -> str:
        """The id of the Engine.IO connection carrying this socket."""
        return self.conn.eio_sid

    @property
    def handshake(self) -> Handshake:
        """The client's handshake: query, headers, address, url."""
        return self.conn.handshake

    @property
    def redelivered(self) -> bool:
        """In a handler: whether its event may have been handled before. Handlers run at least
        once: a worker killed after a handler started (and before it told Redis so, within 50 ms)
        leaves the event to the next worker, which runs it again with this True. The client gets
        the ack once either way."""
        return redelivered_event.get()

    @property
    def user(self) -> AbstractBaseUser | AnonymousUser:
        """The Django user of the handshake (``scope["user"]``), loaded once a connection."""
        return self.conn.user

    def mark_changed(self) -> None:
        """Have ``data`` saved after this handler, for changes below its top level."""
        self.data.dirty = True

    async def aemit(self, event: str, *args: Any, callback: Callable[..., Any] | None = None) -> None:
        """Send ``event`` to this client; ``callback(*ack_args)`` runs when it acknowledges.
        Raises PayloadError when ``args`` are not JSON (NaN, infinity, ...)."""
        frames = conf.PARSER.encode_event(self.namespace, event, list(args), encoder=conf.JSON_ENCODER)
        self._tell_outgoing(event, args)
        if callback is not None:  # not logged for recovery: an ack is for this connection only
            ack_id = next(self._ack_ids)
            self._pending_acks[ack_id] = callback
            await self._host.send_to(self, conf.PARSER.with_ack_id(frames, self.namespace, ack_id))
            return
        own_room = [room_group(self.namespace, self.sid)]
        async with recovery.logged(self._host.layer, self.namespace, frames, own_room, []) as (sent, _):
            await self._host.send_to(self, sent)

    async def acall(self, event: str, *args: Any, timeout: float = DEFAULT_CALL_TIMEOUT) -> Any:
        """Send ``event`` and wait for the client's acknowledgement.

        Returns the single ack argument (a tuple when there are several). Raises
        AckTimeout after ``timeout`` seconds and SocketGone if the socket
        disconnects first.
        """
        frames = conf.PARSER.encode_event(self.namespace, event, list(args), encoder=conf.JSON_ENCODER)
        self._tell_outgoing(event, args)
        return await self.acall_encoded(event, frames, timeout)

    def _tell_outgoing(self, event: str, args: tuple[Any, ...]) -> None:
        """Run the namespace's outgoing hooks for an event this socket sends."""
        for hook in self.handlers.outgoing_hooks:
            self._host.run_callback(hook, self, event, *args)
        self._host.send_signal(signals.event_sent, self, event=event, args=args)

    async def acall_encoded(self, event: str, frames: list[Frame], timeout: float) -> Any:
        """:meth:`acall` with the event already encoded (without an ack id)."""
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        ack_id = next(self._ack_ids)
        self._pending_acks[ack_id] = answer
        await self._host.send_to(self, conf.PARSER.with_ack_id(frames, self.namespace, ack_id))
        try:
            ack_args = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise AckTimeout(f"{event!r} not acknowledged by {self.sid} within {timeout} s") from None
        finally:
            self._pending_acks.pop(ack_id, None)
        return ack_args[0] if len(ack_args) == 1 else tuple(ack_args) if ack_args else None

    async def ajoin(self, room: str) -> None:
        """Enter ``room``."""
        await self._host.join(self, room)

    async def aleave(self, room: str) -> None:
        """Leave ``room``."""
        await self._host.leave(self, room)

    async def adisconnect(self) -> None:
        """Disconnect this socket from its namespace (reason "server namespace disconnect")."""
        await self._host.disconnect(self)

    def acknowledge(self, ack_id: int, ack_args: list[Any]) -> None:
        """Deliver the client's ACK to its ``call`` or callback; an unknown id is ignored."""
        waiter = self._pending_acks.pop(ack_id, None)
        if isinstance(waiter, asyncio.Future):
            if not waiter.done():
                waiter.set_result(ack_args)
        elif waiter is not None:
            self._host.run_callback(waiter, *ack_args)

    def abandon_acks(self, why: str) -> None:
        """Fail every ``call`` still waiting with SocketGone; drop pending callbacks."""
        pending, self._pending_acks = self._pending_acks, {}
        for waiter in pending.values():
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_exception(SocketGone(f"{self.sid}: {why} before acknowledging"))

    emit = sync_twin(aemit)
    call = sync_twin(acall)
    join = sync_twin(ajoin)
    leave = sync_twin(aleave)
    disconnect = sync_twin(adisconnect)


class Ack:
    """The acknowledgement a client asked for, in the hands of a handler that declares a
    keyword-only ``ack`` parameter (Node's callback argument): send it when you want, from any
    task of the worker, or never. Sending it twice, or when the client asked for none, does nothing.

    ::

        @sio.on("slow")
        async def slow(socket, job, *, ack):
            asyncio.get_running_loop().create_task(finish(job, ack))  # ``await ack.asend(result)`` there
    """

    def __init__(self, socket: Socket, ack_id: int | None) -> None:
        self._socket = socket
        self._id = ack_id
        self.sent = False

    @property
    def wanted(self) -> bool:
        """Whether the client asked for an acknowledgement (and has not been sent it yet)."""
        return self._id is not None and not self.sent

    async def asend(self, *args: Any) -> None:
        """Acknowledge with ``args``; PayloadError when they are not JSON."""
        if not self.wanted or not self._socket.connected:
            return
        ack = socketio.Packet(socketio.PacketType.ACK, self._socket.namespace, list(args), self._id)
        frames = conf.PARSER.encode(ack, conf.JSON_ENCODER)
        self.sent = True
        await self._socket._host.send_to(self._socket, frames, ack_id=self._id)

    send = sync_twin(asend)
