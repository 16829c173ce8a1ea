"""The socket worker: Socket.IO namespace logic and the user's handlers, for some shards.

A shard is served by the worker holding its lease in the database, so a second worker for the
same shards waits as a standby. Serving starts by reviving the shard's sessions, sockets and rooms
from the database, then reads the shard's channel: a connection's packets are taken in the order
they were sent. Handlers run as tasks started in that order (sync handlers one after another in
Django's thread, safe for the ORM). A connection has at most ``MAX_IN_FLIGHT`` frames here or on
their way (:mod:`sioless.flow`), so one that floods delays the others' handlers by at most that
many of its own.

The parts, one module each (a part only calls the parts it is built with):

- :mod:`.shards`: leases, the serve loop, reading the shard's channel;
- :mod:`.upkeep`: revival from the database, periodic sweeps;
- :mod:`.intake`: control messages, client frames decoded and routed by packet type;
- :mod:`.connect`, :mod:`.recovering`, :mod:`.events`: CONNECT, CONNECT with recovery, EVENT;
- :mod:`.lifecycle`: rooms, disconnects, suspensions, closes (the worker as a socket sees it);
- :mod:`.expiry`: suspended sockets that were not recovered;
- :mod:`.outbound`: every send on the channel layer;
- :mod:`.handlers`: running the user's handlers; :mod:`.connections`, :mod:`.users`: records.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Iterable
from socket import gethostname

from channels.layers import BaseChannelLayer

from ..namespaces import Registry
from ..timing import RECEIVE_GRACE, STOP_GRACE
from ..writes import OrderedWrites
from .connect import Connector
from .connections import Connections
from .events import Events
from .expiry import Expiry
from .handlers import Tasks
from .intake import Intake
from .lifecycle import Lifecycle
from .recovering import Recovering
from .shards import ShardRunner
from .upkeep import Upkeep

__all__ = ["Worker"]

logger = logging.getLogger(__name__)


class Worker:
    """Serves the sessions of ``shards`` with the handlers of ``namespaces``."""

    def __init__(
        self, namespaces: Registry, layer: BaseChannelLayer, shards: Iterable[int], *, embedded: bool = False
    ) -> None:
        #: Unique, and says where it runs: a worker of the same host takes over from a dead one at once.
        self.name = f"worker-{gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.shards = list(shards)
        self.connections = Connections()
        self.writes = OrderedWrites()
        self.tasks = Tasks()
        self.life = Lifecycle(self.connections, layer, self.writes, self.tasks)
        expiry = Expiry(namespaces, self.life)
        connector = Connector(namespaces, self.life, self.writes)
        self.intake = Intake(
            self.connections,
            self.life,
            connector,
            Recovering(self.connections, self.life, connector, expiry),
            Events(self.life, self.writes),
            self.tasks,
        )
        # embedded: inside the one server process of development, the shards are its own (its lease
        # is taken at once), and a session of any other process is a ghost of one that stopped
        upkeep = Upkeep(namespaces, self.connections, self.life, expiry, embedded=embedded)
        self.admin_ui = namespaces.admin_ui
        self.runner = ShardRunner(
            self.name,
            layer,
            self.shards,
            embedded=embedded,
            connections=self.connections,
            writes=self.writes,
            tasks=self.tasks,
            intake=self.intake,
            upkeep=upkeep,
        )

    async def run(self) -> None:
        """Serve until :meth:`stop` is called, then stop gracefully."""
        logger.info("sioless worker %s for shards %s", self.name, self.shards)
        jobs = [asyncio.ensure_future(self.runner.serve(shard)) for shard in self.shards]
        reporting = (
            None if self.admin_ui is None else asyncio.ensure_future(self.admin_ui.report(self.name, self.connections))
        )
        receiving = self.runner.receiving
        try:
            await self.runner.stopping.wait()
            if receiving:
                await asyncio.wait(list(receiving.values()), timeout=RECEIVE_GRACE)
            for receive in list(receiving.values()):
                receive.cancel()  # idle shards: nothing is being received
            await asyncio.wait(jobs, timeout=2 * STOP_GRACE)
        finally:
            for job in [*jobs, *([reporting] if reporting else [])]:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
        if not await self.writes.caught_up(STOP_GRACE):
            logger.error(
                "sioless worker %s stops with %d state changes not written", self.name, len(self.writes.backlog)
            )
        logger.info("sioless worker %s stopped", self.name)

    def stop(self) -> None:
        """Stop gracefully: finish the message at hand, let handlers end, give the shards up."""
        self.runner.stopping.set()
