"""Suspended sockets whose client did not recover them in time: taken out of the database, their
disconnect handlers run and their signals sent (once, by whichever worker takes each)."""

from __future__ import annotations

import logging
from typing import Any

from .. import signals, store
from ..conf import conf
from ..namespaces import Registry
from ..records import Handshake, StoredSocket
from ..socket import Socket
from ..store import in_store_thread
from .connections import Connection, revived_socket
from .lifecycle import Lifecycle
from .users import load_users, user_of

logger = logging.getLogger(__name__)


class Expiry:
    """Ends suspended sockets past ``MAX_DISCONNECTION_DURATION``."""

    def __init__(self, namespaces: Registry, life: Lifecycle) -> None:
        self.namespaces = namespaces
        self.life = life

    async def expire(self) -> None:
        """End the suspended sockets (of any shard) not recovered within MAX_DISCONNECTION_DURATION.
        A database error waits for the next sweep."""
        try:
            while True:
                expired = await in_store_thread(store.expire_suspended, conf.MAX_DISCONNECTION_DURATION)
                users = await load_users({stored.handshake.get("user_id") for stored, _ in expired})
                for stored, reason in expired:
                    self.end(stored, reason, users)
                if len(expired) < store.EXPIRE_BATCH:
                    return
        except Exception as exc:
            logger.warning("sioless could not end expired suspended sockets: %s", exc)

    def end(self, stored: StoredSocket, reason: str, users: dict[str | None, Any]) -> None:
        """Run the disconnect handler of a suspended socket that will not be recovered, and send
        the signals of its disconnect."""
        logger.debug("suspended socket %s of %s expired", stored.sid, stored.namespace)
        handlers = self.namespaces.namespace_for(stored.namespace)
        if handlers is None or (handlers.handler("disconnect") is None and not _disconnects_heard()):
            return
        handshake = Handshake.from_message(stored.handshake)
        # no consumer (no reply channel), no shard: what it sends goes nowhere
        lost = Connection(stored.eio_sid, -1, "", handshake, user_of(users, handshake.user_id))
        socket = revived_socket(self.life, lost, stored, handlers)
        socket.connected = socket.persisted = False
        self.life.disconnected(socket, reason)


def _disconnects_heard() -> bool:
    """Whether a receiver listens to the signals of a disconnect."""
    return any(signal.has_listeners(Socket) for signal in (signals.socket_disconnected, signals.room_left))
