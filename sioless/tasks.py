"""django-q2's part: the schedule that keeps the heartbeat running, and the task it starts.

The scheduler looks at its schedules about every 30 s and their unit is the minute, so the
schedule is not the ping clock: every minute it starts a ticker run (:mod:`sioless.heartbeat`)
that lasts longer than the longest gap between two runs, and takes over from the run before.
Every qcluster worker process that starts also starts a run at once: after a qcluster restart the
heartbeat comes back within seconds, not at the scheduler's first look 30 s later. A run that
takes over keeps the ticks' rhythm, so these extra runs cost nothing to the clients.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import get_channel_layer

from .conf import conf
from .heartbeat import Ticker

SCHEDULE_NAME = "sioless heartbeat"
RUN_HEARTBEAT = "sioless.tasks.run_heartbeat"
#: Seconds one run ticks: more than the 90 s two runs of a minutely schedule can be apart.
TICKER_RUN = 120.0


def run_heartbeat() -> None:
    """Run the heartbeat for ``TICKER_RUN`` seconds, or until a newer run takes over."""
    asyncio.run(Ticker(get_channel_layer(conf.CHANNEL_LAYER), stands_by=False).run(TICKER_RUN))


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
