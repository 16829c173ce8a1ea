"""The Engine.IO heartbeat: ticks that make every consumer ping its client, and the reaping of
the sessions of server processes that stopped answering them.

One ticker at a time runs the heartbeat; the database says which (:class:`~sioless.models.Heartbeat`)
and each tick is claimed there before it is sent, so no tick goes out twice. In production a
django-q2 schedule starts a ticker run every minute (:mod:`sioless.tasks`) and each run takes over
from the one before; in development the embedded worker runs one for as long as the server runs.

A tick is one group message to every consumer. A consumer checks that its client answered the
ping before (else it closes with "ping timeout") and pings again; the first consumer of each server
process to see the tick reports the process alive. The sessions of a process that stopped
reporting (two ticks in a row) are closed by their workers, with the reason "transport close".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from datetime import datetime
from typing import Any

from channels.layers import BaseChannelLayer

from . import messages, store
from .conf import conf
from .names import HEARTBEAT_GROUP, worker_channel
from .store import in_store_thread
from .timing import SHARD_SWEEP_INTERVAL

logger = logging.getLogger(__name__)

#: Seconds late a ticker that stands by lets the heartbeat get before it takes the heartbeat over.
TAKE_OVER_AFTER = 5.0
#: Seconds between two tries of a tick that failed (the database or Redis unreachable).
RETRY_AFTER = 1.0
#: Seconds within which the workers put consumers back in their groups after Redis lost its data.
REJOIN_WITHIN = SHARD_SWEEP_INTERVAL


class Ticker:
    """Runs the heartbeat while it is this ticker's turn.

    A ticker that ``stands_by`` outlives a newer ticker taking over, and takes the heartbeat back
    when that one stops ticking; otherwise it ends when a newer one takes over.
    """

    def __init__(self, layer: BaseChannelLayer, *, stands_by: bool) -> None:
        self.layer = layer
        self.stands_by = stands_by
        self.name = f"ticker-{secrets.token_hex(6)}"
        self.reports: set[str] = set()
        self.reported_tick: int | None = None
        #: The first tick at which silent processes may be taken for dead (None: not ticked yet).
        self.judge_from: int | None = None
        #: Whether the last tick failed (Redis or the database away): it counted, and no one heard it.
        self.tick_failed = False
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        """End the run after the tick under way (the process running it is stopping)."""
        self.stopping.set()

    async def run(self, seconds: float | None = None) -> None:
        """Tick every ``PING_INTERVAL`` for ``seconds`` (forever when None), while it is this ticker's
        turn, until :meth:`stop`."""
        channel = await self.layer.new_channel("sioless.ticker.")
        await in_store_thread(store.start_ticker, self.name)
        logger.info("sioless %s runs the heartbeat", self.name)
        deadline = None if seconds is None else time.monotonic() + seconds
        take_over_after = TAKE_OVER_AFTER if self.stands_by else None
        try:
            while not self.stopping.is_set() and (deadline is None or time.monotonic() < deadline):
                try:
                    claim = await in_store_thread(store.claim_tick, self.name, conf.PING_INTERVAL, take_over_after)
                    if not claim.mine and not self.stands_by:
                        logger.info("sioless %s hands the heartbeat over", self.name)
                        return
                    if claim.tick is not None:
                        await self.tick(claim.tick, claim.tick_before_last_at, channel)
                except Exception as exc:  # the database or Redis is away: tick as soon as both are back
                    logger.error("sioless %s cannot tick: %s", self.name, exc)
                    self.tick_failed = True
                    await asyncio.sleep(RETRY_AFTER)
                    continue
                wait = claim.wait if claim.mine else claim.wait + TAKE_OVER_AFTER
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                await self.collect_reports(channel, wait)
        finally:
            with contextlib.suppress(Exception):
                await self.record_reports()

    async def tick(self, number: int, tick_before_last_at: datetime | None, channel: str) -> None:
        """Send tick ``number`` to every consumer, then reap the sessions of silent processes.

        No one is judged for a while after Redis lost its data (restarted empty, flushed): the
        consumers hear no tick until their workers have put them in the heartbeat group again; nor
        for two ticks after a tick failed (a failover): the processes' reports may have been lost
        with it and the next one (their reads and sends of Redis retry).
        """
        await self.record_reports()
        self.reported_tick = number
        self.judge_from = max(self.judge_from or number, await self._judged_from(number))
        if self.tick_failed:
            self.tick_failed = False
            self.judge_from = max(self.judge_from, number + 2)
            logger.warning("sioless %s: a tick failed; no process judged before tick %d", self.name, self.judge_from)
        await self.layer.group_send(HEARTBEAT_GROUP, {"type": messages.PING, "tick": number, "reporter": channel})
        if number < self.judge_from:
            return
        dead = await in_store_thread(store.dead_processes, number, tick_before_last_at)
        for (process, shard), sids in dead.items():
            logger.warning("sioless server process %s stopped answering ticks: %d sessions closed", process, len(sids))
            reap = {"type": messages.REAP, "process": process, "shard": shard, "sessions": sids}
            await self.layer.send(worker_channel(shard), reap)

    async def _judged_from(self, number: int) -> int:
        """The tick from which processes are judged, as the marker in Redis keeps it for every
        ticker: when the marker is missing (Redis is new, or lost its data), the tick by which the
        workers have put their consumers back in the heartbeat group."""
        mark = getattr(self.layer, "mark", None)
        if mark is None:
            return number
        missing, judged_from = await mark("heartbeat", number + math.ceil(REJOIN_WITHIN / conf.PING_INTERVAL) + 2)
        if missing:
            logger.info(  # normal: on a new Redis (a first start), or one that lost its data (it heals itself)
                "sioless %s: a new or emptied Redis; server processes are judged from tick %d, once the workers "
                "have put their consumers back in the heartbeat group",
                self.name,
                judged_from,
            )
        return int(judged_from)

    async def collect_reports(self, channel: str, seconds: float) -> None:
        """Take the processes' reports for ``seconds`` (waiting them out if Redis is away), or until
        :meth:`stop`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.stopping.is_set():
            try:
                report = await self._next_report(channel, left)
            except Exception as exc:
                logger.error("sioless %s cannot take reports: %s", self.name, exc)
                await asyncio.sleep(min(left, RETRY_AFTER))
                continue
            if report is None:
                return
            self.reports.add(report["process"])

    async def _next_report(self, channel: str, seconds: float) -> dict[str, Any] | None:
        """The next report within ``seconds``; None when none came or the run is stopping."""
        receive = asyncio.ensure_future(self.layer.receive(channel))
        stopping = asyncio.ensure_future(self.stopping.wait())
        done, pending = await asyncio.wait({receive, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()
        return receive.result() if receive in done else None

    async def record_reports(self) -> None:
        """Write down which processes answered the last tick."""
        if self.reports and self.reported_tick is not None:
            await in_store_thread(store.record_alive, set(self.reports), self.reported_tick)
        self.reports.clear()
