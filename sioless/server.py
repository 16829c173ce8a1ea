"""The server API: handler registration and operations that work from anywhere in Django."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union

from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer

from . import messages, recovery
from .conf import conf
from .exceptions import AckTimeout, SocketGone
from .names import namespace_group, room_group, room_name
from .namespaces import Registry
from .records import DEFAULT_CALL_TIMEOUT
from .remote import RemoteSocket
from .twins import sync_twin

if TYPE_CHECKING:
    from .socket import Socket

logger = logging.getLogger(__name__)

#: The module a process serving sioless' connections has loaded (its ``asgi.py`` routes them).
ROUTES = "sioless.routing"

#: Seconds between two looks, while a call waits, for sockets that disconnected before it reached them.
CALL_RECHECK = 1.0

#: Rooms as the emit functions take them: a room, a socket (its own room), or several.
Rooms = Union[str, "Socket", Iterable[Union[str, "Socket"]], None]


@functools.cache
def _warn_reaches_no_client() -> None:
    """Say, once a process, that what it sends goes nowhere: the in-memory layer reaches its own
    process only, and this one serves no connection (``manage.py shell``, a task, a script)."""
    logger.warning(
        "sioless: this process serves no connection, and its channel layer is the in-memory one, "
        "which reaches its own process only: what sio sends from here reaches no client. Send from "
        "a handler or a view of the development server, or give every process a Redis channel layer "
        "(README: Production topology)."
    )


def _room_names(rooms: Rooms) -> list[str]:
    """Flatten ``rooms`` to room names; a socket stands for the room named by its sid."""
    if rooms is None:
        return []
    if isinstance(rooms, str):
        return [rooms]
    sid = getattr(rooms, "sid", None)
    if isinstance(sid, str):
        return [sid]
    names: list[str] = []
    for room in rooms:  # type: ignore[union-attr]
        names.extend(_room_names(room))
    return names


def _target_groups(namespace: str, to: Rooms) -> list[str]:
    """The groups of the rooms in ``to``; the namespace's group when ``to`` is empty."""
    return [room_group(namespace, room_name(room)) for room in _room_names(to)] or [namespace_group(namespace)]


class Server(Registry):
    """Handlers plus the operations a view, task or handler uses to reach sockets.

    Every operation goes through the channel layer, so it works from any
    process of the project; each has a blocking twin without the ``a`` prefix.
    """

    @property
    def channel_layer(self) -> BaseChannelLayer:
        """The channel layer named by ``SIOLESS['CHANNEL_LAYER']``."""
        layer = get_channel_layer(conf.CHANNEL_LAYER)
        if layer is None:
            raise RuntimeError(f"CHANNEL_LAYERS has no {conf.CHANNEL_LAYER!r} layer")
        if isinstance(layer, InMemoryChannelLayer) and ROUTES not in sys.modules:
            _warn_reaches_no_client()
        return layer

    def instrument(
        self,
        auth: dict[str, str] | bool | None = None,
        *,
        namespace: str = "/admin",
        read_only: bool = False,
        mode: str | None = None,
    ) -> None:
        """Serve the socket.io Admin UI on ``namespace`` (see :mod:`sioless.admin_ui`): by default to
        Django staff users only; ``auth={"username": ..., "password": <make_password() of it>}``;
        ``False``: to anyone. ``read_only``: it watches, and acts on no socket. ``mode``:
        ``"development"`` tells the UI every event, ``"production"`` only counts; by default the
        first with ``DEBUG``, as Node's follows ``NODE_ENV``."""
        from .admin_ui import AdminUI

        self.uninstrument()
        self.admin_ui = AdminUI(self, auth=auth, namespace=namespace, read_only=read_only, mode=mode)

    def uninstrument(self) -> None:
        """Serve the Admin UI no longer (python-socketio's ``uninstrument``)."""
        if self.admin_ui is not None:
            self.admin_ui.close()
            self._forget_namespace(self.admin_ui.namespace)
            self.admin_ui = None

    async def aemit(self, event: str, *args: Any, to: Rooms = None, namespace: str = "/", skip: Rooms = None) -> None:
        """Send ``event`` to the sockets in ``to`` (rooms or sids; default: the whole namespace).

        Sockets in a ``skip`` room, or skip sockets, do not receive it; a socket
        in several ``to`` rooms receives it once. Raises PayloadError when ``args``
        are not JSON (NaN, infinity, ...).
        """
        frames = conf.PARSER.encode_event(namespace, event, list(args), encoder=conf.JSON_ENCODER)
        targets = _target_groups(namespace, to)
        skipped = [room_group(namespace, room) for room in _room_names(skip)]
        layer = self.channel_layer
        async with recovery.logged(layer, namespace, frames, targets, skipped) as (sent, offset):
            # tuples: a layer that copies a message for each member of a group can share them
            message = {
                "type": messages.BROADCAST,
                "frames": tuple(sent),
                "targets": tuple(targets),
                "skip": tuple(skipped),
            }
            if offset is not None:
                message.update(log=namespace_group(namespace), offset=offset)
            for via, group in enumerate(targets):
                await layer.group_send(group, {**message, "via": via})

    async def aenter_room(self, sid: str, room: str, namespace: str = "/") -> None:
        """Make the socket ``sid`` of ``namespace`` join ``room``."""
        await self.asockets_join(room, to=sid, namespace=namespace)

    async def aleave_room(self, sid: str, room: str, namespace: str = "/") -> None:
        """Make the socket ``sid`` of ``namespace`` leave ``room``."""
        await self.asockets_leave(room, to=sid, namespace=namespace)

    async def aclose_room(self, room: str, namespace: str = "/") -> None:
        """Make every socket in ``room`` leave it."""
        await self.asockets_leave(room, to=room, namespace=namespace)

    async def adisconnect(self, sid: str, namespace: str = "/") -> None:
        """Disconnect the socket ``sid`` from ``namespace`` (reason "server namespace disconnect")."""
        await self.adisconnect_sockets(to=sid, namespace=namespace)

    async def asockets_join(self, room: str, to: Rooms = None, namespace: str = "/") -> None:
        """Make the sockets in ``to`` (default: the whole namespace) join ``room``."""
        await self._command("join", namespace, to, room=room_name(room))

    async def asockets_leave(self, room: str, to: Rooms = None, namespace: str = "/") -> None:
        """Make the sockets in ``to`` (default: the whole namespace) leave ``room``."""
        await self._command("leave", namespace, to, room=room_name(room))

    async def adisconnect_sockets(self, to: Rooms = None, namespace: str = "/") -> None:
        """Disconnect the sockets in ``to`` (default: the whole namespace)."""
        await self._command("disconnect", namespace, to)

    async def afetch_sockets(self, to: Rooms = None, namespace: str = "/") -> list[RemoteSocket]:
        """The sockets in ``to`` (default: the whole namespace), read from the database: sid,
        rooms, data, auth and handshake, whichever process serves them; each can be sent events,
        made to join or leave rooms, or disconnected (Node's ``RemoteSocket``)."""
        from . import store

        stored = await database_sync_to_async(store.fetch_sockets)(namespace, _room_names(to))
        return [RemoteSocket.of(socket, self) for socket in stored]

    async def acall(
        self, event: str, *args: Any, to: str, namespace: str = "/", timeout: float = DEFAULT_CALL_TIMEOUT
    ) -> Any:
        """Send ``event`` to the socket ``to`` (a sid) and return its acknowledgement, from any
        process (python-socketio's ``call``): the single ack argument, a tuple when there are
        several. Raises AckTimeout after ``timeout`` seconds, SocketGone when there is no such
        socket or it disconnects first."""
        answers = await self.acall_all(event, *args, to=to, namespace=namespace, timeout=timeout)
        if to not in answers:
            raise SocketGone(f"{to}: no such socket in {namespace}, or it disconnected before acknowledging")
        return answers[to]

    async def acall_all(
        self, event: str, *args: Any, to: Rooms = None, namespace: str = "/", timeout: float = DEFAULT_CALL_TIMEOUT
    ) -> dict[str, Any]:
        """Send ``event`` to the sockets in ``to`` (default: the whole namespace) and collect their
        acknowledgements, by sid (Node's ``io.timeout(ms).emitWithAck()``). Sockets that disconnect
        first are left out. Raises AckTimeout, with the answers so far in its ``answers``, when some
        have not answered within ``timeout`` seconds."""
        frames = conf.PARSER.encode_event(namespace, event, list(args), encoder=conf.JSON_ENCODER)
        awaited = await self._sids(to, namespace)
        answers: dict[str, Any] = {}
        if not awaited:
            return answers
        layer = self.channel_layer
        answer_to = await layer.new_channel()
        await self._command("call", namespace, to, event=event, frames=frames, timeout=timeout, answer_to=answer_to)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        receiving = asyncio.ensure_future(layer.receive(answer_to))  # not cancelled between answers: none is lost
        try:
            while awaited:
                await asyncio.wait([receiving], timeout=max(0.0, min(deadline - loop.time(), CALL_RECHECK)))
                if receiving.done():
                    answer, receiving = receiving.result(), asyncio.ensure_future(layer.receive(answer_to))
                    awaited.discard(answer["sid"])
                    if "value" in answer:
                        answers[answer["sid"]] = answer["value"]
                elif loop.time() >= deadline:
                    late = len(awaited)
                    raise AckTimeout(f"{event!r} not acknowledged by {late} sockets within {timeout} s", answers)
                else:  # a socket that went before the call reached it never answers
                    awaited &= await self._sids(to, namespace)
        finally:
            receiving.cancel()
        return answers

    async def _sids(self, to: Rooms, namespace: str) -> set[str]:
        """The sids of the sockets in ``to``, as the database has them now."""
        from . import store

        return await database_sync_to_async(store.socket_sids)(namespace, _room_names(to))

    async def _command(self, op: str, namespace: str, to: Rooms, **fields: Any) -> None:
        """Send a command to the sockets in ``to`` (each once); each one's worker carries it out
        in order."""
        targets = _target_groups(namespace, to)
        message = {"type": messages.COMMAND, "op": op, "namespace": namespace, "targets": targets, **fields}
        for via, group in enumerate(targets):
            await self.channel_layer.group_send(group, {**message, "via": via})

    emit = sync_twin(aemit)
    enter_room = sync_twin(aenter_room)
    leave_room = sync_twin(aleave_room)
    close_room = sync_twin(aclose_room)
    disconnect = sync_twin(adisconnect)
    sockets_join = sync_twin(asockets_join)
    sockets_leave = sync_twin(asockets_leave)
    disconnect_sockets = sync_twin(adisconnect_sockets)
    fetch_sockets = sync_twin(afetch_sockets)
    call = sync_twin(acall)
    call_all = sync_twin(acall_all)


#: The project's server: register handlers on it and emit through it.
sio = Server()
