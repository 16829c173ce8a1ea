"""A server process that stops ends its sessions first, so none is left as a ghost for the heartbeat.

uvicorn closes each WebSocket and waits for its consumer, which tells its worker as on any close.
daphne (4.2) does not: on SIGTERM its Twisted reactor stops the event loop while consumers still
run (its own "before shutdown" hook fails with a KeyError on connections whose application has
ended), so the closes never reach the workers. sioless therefore adds a hook of its own to the
reactor, when there is one, that ends every live session and waits until the workers have been
told, for up to ``SHUTDOWN_GRACE`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from typing import Protocol

from .flow import Outbox
from .reasons import DisconnectReason


class Session(Protocol):
    """A consumer serving a session (:class:`sioless.consumers.EngineConsumer`), as shutdown sees it."""

    outbox: Outbox | None

    async def end(self, reason: DisconnectReason) -> None:
        """Stop serving the session and tell the worker why."""


logger = logging.getLogger(__name__)

#: Seconds a stopping server process gives its sessions to tell their workers.
SHUTDOWN_GRACE = 5.0

#: The sessions this process serves.
live: weakref.WeakSet[Session] = weakref.WeakSet()
_hooked = False


def serving(consumer: Session) -> None:
    """Note a consumer that serves a session, and hook the server's shutdown once."""
    global _hooked
    live.add(consumer)
    if not _hooked:
        _hooked = True
        _hook_twisted_shutdown()


def _hook_twisted_shutdown() -> None:
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not getattr(reactor, "running", False):
        return
    from twisted.internet.defer import Deferred

    def before_shutdown() -> Deferred[None]:
        return Deferred.fromFuture(asyncio.ensure_future(_end_all(DisconnectReason.SERVER_SHUTTING_DOWN)))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


async def _end_all(reason: DisconnectReason) -> None:
    """End every session this process serves, and wait until their workers know (bounded)."""
    consumers = list(live)
    logger.info("sioless: the server stops, %d sessions end", len(consumers))
    for consumer in consumers:
        await consumer.end(reason)
    await asyncio.gather(*(consumer.outbox.drain(SHUTDOWN_GRACE) for consumer in consumers if consumer.outbox))
