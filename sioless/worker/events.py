"""EVENT packets: the handler of the event run, its return value sent back as the ack, and what it
changed in ``socket.data`` saved."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from .. import signals, store
from ..conf import conf
from ..exceptions import PayloadError, ProtocolError
from ..fields import encoded
from ..namespaces import CATCH_ALL, LIFECYCLE_EVENTS
from ..protocol.socketio import Packet, PacketType
from ..socket import Ack, Socket
from ..writes import OrderedWrites
from .handlers import call_handler, handler_name, takes_ack
from .lifecycle import Lifecycle

logger = logging.getLogger(__name__)


class Events:
    """Runs event handlers."""

    def __init__(self, life: Lifecycle, writes: OrderedWrites) -> None:
        self.life = life
        self.writes = writes

    def job(self, socket: Socket, packet: Packet) -> Coroutine[Any, Any, None] | None:
        """The run of the handler of an event, if it has one (the catch-all's, if it has not)."""
        event, *args = packet.data
        if len(event) > conf.MAX_NAME_LENGTH:
            raise ProtocolError(f"event name of {len(event)} characters")
        if event in LIFECYCLE_EVENTS:
            logger.debug("ignoring event %r sent by %s", event, socket.sid)
            return None
        self.life.tasks.send_signal(signals.event_received, socket, event=event, args=tuple(args))
        handler = None if event == CATCH_ALL else socket.handlers.handler(event)
        if handler is None:  # an event named "*" too: the catch-all's own name is no event
            catch_all = socket.handlers.handler(CATCH_ALL)
            if catch_all is None:
                logger.debug("no handler for event %r in %s", event, socket.namespace)
                return None
            handler, args = catch_all, [event, *args]
        return self._run(socket, event, handler, args, packet.id)

    async def _run(
        self, socket: Socket, event: str, handler: Callable[..., Any], args: list[Any], ack_id: int | None
    ) -> None:
        """Run an event's handler and send the client its return value as the ack, if it asked for
        one. A handler that raises, or returns what cannot be encoded, is logged and acks nothing."""
        if takes_ack(handler):  # the handler acknowledges when it wants, if it wants
            ack_id, extra = None, {"ack": Ack(socket, ack_id)}
        else:
            extra = {}
        try:
            result = await call_handler(handler, socket, *args, **extra)
        except Exception:
            logger.exception("%s raised", _about(handler, event, socket))
            return
        finally:
            await self.save_data(socket, handler, event)
        if ack_id is not None and socket.connected:
            ack_args = [] if result is None else list(result) if isinstance(result, tuple) else [result]
            try:
                ack = Packet(PacketType.ACK, socket.namespace, ack_args, ack_id)
                frames = conf.PARSER.encode(ack, conf.JSON_ENCODER)
            except PayloadError:
                logger.exception("%s returned an ack that cannot be sent", _about(handler, event, socket))
                return
            await self.life.send_to(socket, frames, ack_id=ack_id, handled=1)

    async def save_data(self, socket: Socket, handler: Callable[..., Any], event: str) -> None:
        """Save ``socket.data`` if the handler of ``event`` changed it; one write at a time, the
        latest data wins. Data the database cannot store is not saved: the error says which handler
        stored it."""
        if socket.saving:
            return  # the save under way writes this change too
        socket.saving = True
        try:
            while socket.data.dirty and socket.persisted:
                socket.data.dirty = False
                try:
                    data = encoded(dict(socket.data))
                except (TypeError, ValueError) as why:
                    about = _about(handler, event, socket)
                    logger.error("%s stored in socket.data what cannot be saved (%s): not saved", about, why)
                    return
                await self.writes.write(store.save_data, socket.sid, data)
        finally:
            socket.saving = False


def _about(handler: Callable[..., Any], event: str, socket: Socket) -> str:
    """Which handler ran for what, for the log of its failure."""
    return f"handler {handler_name(handler)} of event {event!r} in namespace {socket.namespace} (socket {socket.sid})"
