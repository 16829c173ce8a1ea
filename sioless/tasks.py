"""django-q2's part: the schedule that keeps the heartbeat running, and the task it starts.

The scheduler looks at its schedules about every 30 s and their unit is the minute, so the
schedule is not the ping clock: every minute it starts a ticker run (:mod:`sioless.heartbeat`)
that lasts longer than the longest gap between two runs, and takes over from the run before.
Every qcluster worker process that starts also starts a run at once: after a qcluster restart the
heartbeat comes back within seconds, not at the scheduler's first look 30 s later. A run that
takes over keeps the ticks' rhythm, so these extra runs cost nothing to the clients.

A run ends early once it is no longer needed, which a run looks at every second: when the schedule
has queued the next run (in a qcluster of one worker, that run waits for this one to end: so one
worker is enough for the heartbeat, and runs never pile up), and when its qcluster stops (SIGTERM
to the qcluster's main process: django-q2 waits for the tasks under way before it exits and tells
its workers nothing, but it keeps its status in the broker). Brokers that keep no status (the ORM
broker without a shared cache) make a stopping qcluster wait for the run's end, up to
``TICKER_RUN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from channels.layers import get_channel_layer
from django.db import DatabaseError, connection, connections

from .conf import conf
from .heartbeat import Ticker

SCHEDULE_NAME = "sioless heartbeat"
RUN_HEARTBEAT = "sioless.tasks.run_heartbeat"
#: Seconds one run ticks: more than the 90 s two runs of a minutely schedule can be apart.
TICKER_RUN = 120.0
#: Seconds between two looks at what ends a run early.
LOOK_INTERVAL = 1.0
#: Seconds a run looks for its qcluster's status (a cluster saves it within a second of starting).
FIND_WITHIN = 10.0


def run_heartbeat() -> None:
    """Run the heartbeat for ``TICKER_RUN`` seconds, or until it is no longer needed."""
    asyncio.run(run_while_needed(Ticker(get_channel_layer(conf.CHANNEL_LAYER), stands_by=False)))


async def run_while_needed(ticker: Ticker) -> None:
    """Run ``ticker`` for ``TICKER_RUN`` seconds, stopping it once the next run is queued or this
    process' qcluster stops (or a newer run takes over, which the ticker sees itself)."""
    run = asyncio.ensure_future(ticker.run(TICKER_RUN))
    # A thread of the run's own: a look stuck on an unreachable broker never holds the run's end.
    looks = ThreadPoolExecutor(1, thread_name_prefix="sioless-heartbeat-looks")
    loop = asyncio.get_running_loop()
    watch = RunWatch()
    try:
        while not run.done():
            if await _look(loop.run_in_executor(looks, watch.run_over)):
                ticker.stop()
                break
            await asyncio.wait({run}, timeout=LOOK_INTERVAL)
        await run
    finally:
        looks.submit(connections.close_all)
        looks.shutdown(wait=False)


async def _look(look: asyncio.Future[bool]) -> bool:
    """What a look found; False when it takes longer than ``LOOK_INTERVAL`` (the broker or the database away)."""
    try:
        return await asyncio.wait_for(look, LOOK_INTERVAL)
    except TimeoutError:
        return False


class RunWatch:
    """Looks at what ends a heartbeat run early: the next run queued, its qcluster stopping."""

    def __init__(self) -> None:
        self.cluster = ClusterStatus()
        #: The run the schedule had queued last as this run began (None: none yet, or unknown).
        self.queued_before: str | None = None
        self.queued_before_known = False

    def run_over(self) -> bool:
        """Whether the run is no longer needed."""
        return self.cluster.stopping() or self.next_run_queued()

    def next_run_queued(self) -> bool:
        """Whether the schedule has queued a run since this one began (False while the database is away)."""
        from django_q.models import Schedule

        try:
            queued = Schedule.objects.filter(name=SCHEDULE_NAME).values_list("task", flat=True).first()
        except DatabaseError:  # the database is away: the next look connects afresh
            connection.close()
            return False
        if not self.queued_before_known:  # the first look the database answered, as the run began
            self.queued_before, self.queued_before_known = queued, True
        return queued != self.queued_before


class ClusterStatus:
    """The status of the qcluster whose worker process this is, as the cluster keeps it in its broker."""

    def __init__(self) -> None:
        self.broker: Any = None  # made by the first look: the ORM broker reads the database then
        self.cluster_id: UUID | None = None
        self.find_until = time.monotonic() + FIND_WITHIN

    def stopping(self) -> bool:
        """Whether the cluster is stopping (False while it is unknown, or the broker is away)."""
        from django_q.brokers import get_broker
        from django_q.conf import Conf
        from django_q.status import Stat

        with contextlib.suppress(Exception):  # the broker is away: the run goes on
            self.broker = self.broker or get_broker()
            if self.cluster_id is None and time.monotonic() < self.find_until:
                self.cluster_id = self._own_cluster_id(Stat.get_all(self.broker))
            if self.cluster_id is not None:
                return bool(Stat.get(os.getpid(), self.cluster_id, self.broker).status == Conf.STOPPING)
        return False

    @staticmethod
    def _own_cluster_id(stats: list[Any]) -> UUID | None:
        """The id of the cluster, among ``stats``, that counts this process among its workers."""
        host, pid = socket.gethostname(), os.getpid()
        return next((stat.cluster_id for stat in stats if stat.host == host and pid in stat.workers), None)


def schedule_heartbeat(**kwargs: Any) -> None:
    """Create or repair the minutely schedule of :func:`run_heartbeat` (run after ``migrate``)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": RUN_HEARTBEAT, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
    )


def kick_heartbeat(**kwargs: Any) -> None:
    """Start a run now (a qcluster worker process just started)."""
    from django_q.tasks import async_task

    async_task(RUN_HEARTBEAT)
