"""Keeping a shard's state whole: reviving it from the database when serving starts, and sweeping
it while served (overdue connections closed, groups Redis lost joined again, suspended sockets
expired)."""

from __future__ import annotations

import asyncio
import logging
import time

from channels.layers import BaseChannelLayer

from .. import store
from ..conf import conf
from ..names import process_of
from ..namespaces import Registry
from ..reasons import DisconnectReason
from ..records import Handshake, StoredSession
from ..store import in_store_thread
from ..timing import SHARD_SWEEP_INTERVAL, SYNC_GRACE
from .connections import Connection, Connections, revived_socket
from .expiry import Expiry
from .lifecycle import Lifecycle, groups_of
from .users import load_users, user_of

logger = logging.getLogger(__name__)


class Upkeep:
    """Revives and sweeps the shards of one worker."""

    def __init__(
        self, namespaces: Registry, connections: Connections, life: Lifecycle, expiry: Expiry, *, embedded: bool
    ) -> None:
        self.namespaces = namespaces
        self.connections = connections
        self.life = life
        self.outbound = life.outbound
        self.expiry = expiry
        #: Inside the one server process of development: a session of any other process is a ghost.
        self.embedded = embedded

    @property
    def layer(self) -> BaseChannelLayer:
        return self.outbound.layer

    # Revival --------------------------------------------------------------------

    async def revive(self, shard: int) -> None:
        """Revive a shard's sessions, sockets and rooms, sending nothing to clients but a resync
        to each consumer (it answers with how many frames it sent)."""
        stored = await in_store_thread(store.load_shard, shard)
        users = await load_users({row.handshake.get("user_id") for row in stored})
        for row in stored:
            handshake = Handshake.from_message(row.handshake)
            conn = Connection(row.sid, shard, row.reply_channel, handshake, user_of(users, handshake.user_id))
            conn.credited = -1  # unknown: the consumer is asked how many frames it sent
            conn.persisted, conn.upgraded = True, row.upgraded
            self._revive_sockets(conn, row)
            self.connections[conn.eio_sid] = conn
        logger.info("sioless revived %d sessions of shard %s", len(stored), shard)
        if self.embedded:
            await self._reap_other_processes(shard)
        sync_deadline = time.monotonic() + SYNC_GRACE
        for conn in self.connections.of_shard(shard):
            conn.sync_deadline = sync_deadline
            await self.outbound.resync(conn)

    def _revive_sockets(self, conn: Connection, row: StoredSession) -> None:
        for kept in row.sockets:
            handlers = self.namespaces.namespace_for(kept.namespace)
            if handlers is None:
                logger.warning("namespace %r is no longer served: socket %s dropped", kept.namespace, kept.sid)
                continue
            socket = revived_socket(self.life, conn, kept, handlers)
            socket.pid_digest = row.pid_digests.get(kept.sid)
            conn.sockets[socket.namespace] = socket

    async def _reap_other_processes(self, shard: int) -> None:
        """Close the sessions of server processes before this one (development has one process)."""
        this_process = process_of(await self.layer.new_channel())
        ghosts = [c.eio_sid for c in self.connections.of_shard(shard) if process_of(c.reply) != this_process]
        if ghosts:
            await self.life.reap(ghosts)
            logger.info("sioless reaped %d sessions of stopped server processes", len(ghosts))

    # Sweeps -----------------------------------------------------------------------

    async def sweep(self, shard: int, *, expires_suspended: bool) -> None:
        """Sweep the shard for as long as it is served (``expires_suspended``: this shard's sweeps
        also end the suspended sockets of every shard that expired)."""
        rejoin_due = False
        while True:
            rejoin_due = await self._check_groups(shard, rejoin_due)
            await asyncio.sleep(min(SHARD_SWEEP_INTERVAL, conf.BINARY_TIMEOUT / 2, conf.CONNECT_TIMEOUT / 4))
            if expires_suspended:
                await self.expiry.expire()
            await self._close_overdue(shard)

    async def _check_groups(self, shard: int, rejoin_due: bool) -> bool:
        """Put the consumers back in their groups when Redis has lost them (restarted empty,
        flushed, failed over to a replica that was behind); whether that is still due."""
        mark = getattr(self.layer, "mark", None)
        try:
            if mark is not None:
                missing, _ = await mark(f"shard-{shard}")
                rejoin_due = rejoin_due or missing
            if rejoin_due:
                await self._rejoin_groups(shard)
                rejoin_due = False
        except Exception as exc:  # Redis is away, or this was a connection from before it restarted
            logger.warning("sioless could not check Redis' groups of shard %s: %s", shard, exc)
        return rejoin_due

    async def _rejoin_groups(self, shard: int) -> None:
        """Add every consumer of the shard to its groups again: heartbeat, namespaces, rooms."""
        connections = self.connections.of_shard(shard)
        for conn in connections:
            groups = [group for socket in list(conn.sockets.values()) for group in groups_of(socket)]
            await self.outbound.rejoin(conn, groups)
        if connections:
            logger.warning("sioless put %d sessions of shard %s in their groups again", len(connections), shard)

    async def _close_overdue(self, shard: int) -> None:
        """Close the connections that connected no namespace within ``CONNECT_TIMEOUT`` (as Node
        does, whatever they do with pings), those whose binary packet is not complete
        ``BINARY_TIMEOUT`` after it began, and revived ones whose consumer never answered."""
        now = time.monotonic()
        for conn in self.connections.of_shard(shard):
            if conn.sync_deadline is not None and conn.sync_deadline < now:
                logger.info("closing session %s: its consumer is gone", conn.eio_sid)
                await self.life.close(conn, DisconnectReason.TRANSPORT_CLOSE, tell_client=True)
                continue
            if conn.connect_deadline is not None and conn.connect_deadline < now:
                conn.connect_deadline = None
                if not conn.sockets:
                    logger.info("closing session %s: no namespace connected in time", conn.eio_sid)
                    await self.life.close(conn, DisconnectReason.FORCED_CLOSE, tell_client=True)
                    continue
            if conn.partial is not None and conn.partial_since < now - conf.BINARY_TIMEOUT:
                logger.info("closing session %s: its binary packet was not completed in time", conn.eio_sid)
                await self.life.close(conn, DisconnectReason.PARSE_ERROR, tell_client=True)
