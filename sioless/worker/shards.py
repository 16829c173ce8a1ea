"""Serving shards: a shard's lease in the database (one worker serves it, others stand by), the
serve loop around it, reading the shard's channel (with receipts, from a durable one), and giving
the shard up."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from socket import gethostname
from typing import Any

from channels.layers import BaseChannelLayer

from .. import store
from ..layers import TAKE_BATCH, receive_batch
from ..names import worker_channel
from ..receipts import Receipts
from ..store import in_store_thread
from ..timing import LEASE_POLL, LEASE_RENEW, LEASE_TTL, STOP_GRACE, WRITES_CATCH_UP
from ..writes import OrderedWrites
from .connections import Connections
from .handlers import Tasks
from .intake import Intake, no_receipt
from .upkeep import Upkeep

logger = logging.getLogger(__name__)


class ShardRunner:
    """Serves one worker's shards, each as long as it holds the shard's lease."""

    def __init__(
        self,
        name: str,
        layer: BaseChannelLayer,
        shards: list[int],
        *,
        embedded: bool,
        connections: Connections,
        writes: OrderedWrites,
        tasks: Tasks,
        intake: Intake,
        upkeep: Upkeep,
    ) -> None:
        self.name = name
        self.layer = layer
        self.shards = shards
        self.embedded = embedded
        self.connections = connections
        self.writes = writes
        self.tasks = tasks
        self.intake = intake
        self.upkeep = upkeep
        self.stopping = asyncio.Event()
        #: Per shard served: the receipts of the messages taken from its durable channel.
        self._receipts: dict[int, Receipts] = {}
        #: Per shard: the read of its channel under way.
        self.receiving: dict[int, asyncio.Future[Any]] = {}

    async def serve(self, shard: int) -> None:
        """Hold the shard's lease and serve it; wait as a standby while another worker does.

        An error of Redis or the database (while receiving, renewing the lease, reviving) ends
        the serving, not the worker: it gives the shard up, says so, and serves again as soon as
        it can reach both, backing off meanwhile. It takes no lease while it cannot reach Redis.
        """
        failures = 0
        standing_by = False
        while not self.stopping.is_set():
            try:
                acquired = await self._reachable() and await self._lease(shard)
                if not acquired and not standing_by:
                    holder = await in_store_thread(store.lease_holder, shard)
                    logger.info("sioless worker %s stands by for shard %s, served by %s", self.name, shard, holder)
                standing_by = not acquired
            except Exception as exc:
                logger.error("sioless worker %s cannot serve shard %s: %s", self.name, shard, exc)
                acquired = False
            if not acquired:
                await asyncio.sleep(min(LEASE_POLL * 2**failures, LEASE_RENEW))
                failures = min(failures + 1, 5)
                continue
            if await self._serve_leased(shard):
                failures = 0
            if not self.stopping.is_set():
                logger.warning("sioless worker %s no longer serves shard %s", self.name, shard)

    async def _serve_leased(self, shard: int) -> bool:
        """Serve a shard whose lease this worker holds, until it stops or fails; whether serving started."""
        started = False
        try:
            if not await self.writes.caught_up(WRITES_CATCH_UP):  # the database must hold what this worker changed
                raise RuntimeError(f"{len(self.writes.backlog)} earlier state changes are not written yet")
            await self.upkeep.revive(shard)
            logger.info("sioless worker %s serving shard %s", self.name, shard)
            started = True
            sweep = self.upkeep.sweep(shard, expires_suspended=shard == self.shards[0])
            await _first_to_end(self._consume(shard), self._keep_lease(shard), sweep)
        except Exception:
            logger.exception(
                "sioless worker %s stopped serving shard %s: it serves again once it can", self.name, shard
            )
        finally:
            try:
                await self._give_up(shard)
            except Exception as exc:
                logger.error("sioless worker %s could not give shard %s up cleanly: %s", self.name, shard, exc)
        return started

    async def _reachable(self) -> bool:
        """Whether the channel layer answers (layers that cannot tell are taken at their word)."""
        ping = getattr(self.layer, "ping", None)
        if ping is not None:
            await ping()
        return True

    async def _lease(self, shard: int) -> bool:
        """Take or renew the shard's lease; False while another worker holds it. The lease of a
        worker of this host whose process is gone is taken over at once, not after LEASE_TTL."""
        if await in_store_thread(store.acquire_lease, shard, self.name, LEASE_TTL, self.embedded):
            return True
        holder = await in_store_thread(store.lease_holder, shard)
        if holder is None or not _dead_here(holder):
            return False
        leased = await in_store_thread(store.acquire_lease, shard, self.name, LEASE_TTL, False, holder)
        if leased:
            logger.info(
                "sioless worker %s took shard %s over from %s, a process of this host that is gone",
                self.name,
                shard,
                holder,
            )
        return leased

    async def _keep_lease(self, shard: int) -> None:
        """Renew the lease until another worker holds it. While the database cannot be reached,
        serving goes on for as long as the last renewal lasts (less a renewal's interval, for
        clocks): a short database outage pauses nothing; a longer one raises, and the shard is
        given up until the database is back (no other worker can take it meanwhile)."""
        valid_until = time.monotonic() + LEASE_TTL - LEASE_RENEW
        while True:
            await asyncio.sleep(LEASE_RENEW)
            try:
                if not await self._lease(shard):
                    return
            except Exception as exc:
                if time.monotonic() >= valid_until:
                    raise
                logger.error("sioless worker %s cannot renew the lease of shard %s: %s", self.name, shard, exc)
                continue
            valid_until = time.monotonic() + LEASE_TTL - LEASE_RENEW

    async def _consume(self, shard: int) -> None:
        """Dispatch the shard's messages in order until the worker stops. From a durable channel
        (sioless' Redis layer) messages are read in batches, each staying in flight in Redis until
        its handler has started: what a dead worker had read and not started is put back first."""
        channel = worker_channel(shard)
        durable = hasattr(self.layer, "take")
        receipts = None
        restored = 0
        if durable:
            receipts = self._receipts[shard] = Receipts(self.layer, channel)
            if restored := await self.layer.restore(channel):
                logger.info(  # normal after a stop or a crash: nothing is lost
                    "sioless worker %s takes first %d messages its predecessor had taken and not started",
                    self.name,
                    restored,
                )
        while not self.stopping.is_set():
            receiving = asyncio.ensure_future(
                self.layer.take(channel) if durable else receive_batch(self.layer, channel, TAKE_BATCH)
            )
            self.receiving[shard] = receiving
            try:
                received = await receiving
            except asyncio.CancelledError:
                if receiving.cancelled() and self.stopping.is_set():
                    return  # stopped while waiting: a message being received stays queued
                raise
            finally:
                del self.receiving[shard]
            if receipts is None:
                batch = [(message, no_receipt) for message in received]
            else:
                batch = [(message, receipts.on_start(receipt)) for message, receipt in received]
                for message, _ in batch[:restored]:  # put back first: a dead worker may have started them
                    message["redelivered"] = True
                restored = max(0, restored - len(batch))
            for message, on_start in batch:
                if self.stopping.is_set():
                    return  # the messages of the batch not started stay in flight: the next worker's
                try:
                    await self.intake.dispatch(message, on_start)
                except Exception:
                    logger.exception("sioless worker failed on a %s message", message.get("type"))

    async def _give_up(self, shard: int) -> None:
        """Stop serving a shard: its calls fail, handlers get a moment, what they started is
        acknowledged, the lease goes."""
        shard_connections = self.connections.of_shard(shard)
        for conn in shard_connections:
            for socket in conn.sockets.values():
                socket.abandon_acks("the worker stopped serving it")
        await self.tasks.settle(STOP_GRACE)
        for conn in shard_connections:
            self.connections.pop(conn.eio_sid, None)
        if (receipts := self._receipts.pop(shard, None)) is not None:
            await receipts.settle()
        await in_store_thread(store.release_lease, shard, self.name)


def _dead_here(holder: str) -> bool:
    """Whether a lease holder's name (see Worker.name) is that of a process of this host that is gone."""
    parts = holder.removeprefix("worker-").rsplit("-", 2)
    if len(parts) != 3 or parts[0] != gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def _first_to_end(*jobs: Coroutine[Any, Any, None]) -> None:
    """Run jobs until the first ends; cancel the others. Its exception, if any, propagates."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()
