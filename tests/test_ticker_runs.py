"""How a heartbeat run ends: after its seconds, or within a second once the schedule queued the
next run or its qcluster stops (the cluster's status in the real Redis broker), never because
another cluster stops."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from asgiref.sync import sync_to_async
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.signing import SignedPackage
from django_q.status import Stat, Status

from sioless import tasks
from sioless.heartbeat import Ticker
from sioless.layers import InMemoryChannelLayer
from tests.support.inprocess import let_go_of_the_database

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def ticker() -> AsyncIterator[Ticker]:
    """A production run's ticker, on the in-memory layer."""
    yield Ticker(InMemoryChannelLayer(), stands_by=False)
    await let_go_of_the_database()


@pytest.fixture
def clusters() -> Iterator[dict[uuid.UUID, Status]]:
    """Clusters' statuses as django-q2 keeps them in the broker (saved by :func:`save`)."""
    saved: dict[uuid.UUID, Status] = {}
    yield saved
    broker = get_broker()
    for cluster_id in saved:
        broker.connection.delete(Stat.get_key(cluster_id))


def save(
    clusters: dict[uuid.UUID, Status], workers: list[int], status: str, cluster_id: uuid.UUID | None = None
) -> uuid.UUID:
    """Save a cluster's status, as its sentinel does every half second; its id."""
    cluster = Status(pid=1, cluster_id=cluster_id or uuid.uuid4())
    cluster.host, cluster.workers, cluster.status = socket.gethostname(), workers, status
    get_broker().set_stat(Stat.get_key(cluster.cluster_id), SignedPackage.dumps(cluster, True), 60)
    clusters[cluster.cluster_id] = cluster
    return cluster.cluster_id


async def test_a_stopped_run_ends_after_the_tick_under_way(ticker: Ticker) -> None:
    run = asyncio.ensure_future(ticker.run(60))
    await asyncio.sleep(0.5)  # it ticked, and waits for the next tick
    assert not run.done()
    started = time.monotonic()
    ticker.stop()
    await asyncio.wait_for(run, 5)
    assert time.monotonic() - started < 1


def test_a_run_sees_its_own_cluster_stopping_and_no_other(clusters: dict[uuid.UUID, Status]) -> None:
    other = save(clusters, [os.getpid() + 1], Conf.IDLE)
    own = save(clusters, [os.getpid()], Conf.IDLE)
    status = tasks.ClusterStatus()
    assert not status.stopping()
    assert status.cluster_id == own
    save(clusters, [os.getpid() + 1], Conf.STOPPING, cluster_id=other)
    assert not status.stopping()
    save(clusters, [os.getpid()], Conf.STOPPING, cluster_id=own)
    assert status.stopping()


async def test_a_run_ends_once_its_cluster_stops(
    ticker: Ticker, clusters: dict[uuid.UUID, Status], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "LOOK_INTERVAL", 0.1)
    own = save(clusters, [os.getpid()], Conf.IDLE)
    run = asyncio.ensure_future(tasks.run_while_needed(ticker))
    await asyncio.sleep(0.5)
    assert not run.done()
    save(clusters, [os.getpid()], Conf.STOPPING, cluster_id=own)
    await asyncio.wait_for(run, 5)


async def test_a_run_ends_once_the_schedule_queued_the_next(ticker: Ticker, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a qcluster of one worker the next run waits for this one: runs never pile up."""
    monkeypatch.setattr(tasks, "LOOK_INTERVAL", 0.1)
    await sync_to_async(queue_scheduled_run)("run-1")  # the run before, or this one
    run = asyncio.ensure_future(tasks.run_while_needed(ticker))
    await asyncio.sleep(0.5)
    assert not run.done()
    await sync_to_async(queue_scheduled_run)("run-2")
    await asyncio.wait_for(run, 5)


def queue_scheduled_run(task: str) -> None:
    """What django-q2's scheduler writes as it queues a run of the heartbeat's schedule."""
    tasks.schedule_heartbeat()
    Schedule.objects.filter(name=tasks.SCHEDULE_NAME).update(task=task)


async def test_a_run_starts_on_the_orm_broker(ticker: Ticker, monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2's ORM broker reads the database as it is made: not on the run's event loop."""
    monkeypatch.setattr(Conf, "ORM", "default")  # django-q2 reads Q_CLUSTER once, as it is imported
    monkeypatch.setattr(tasks, "LOOK_INTERVAL", 0.1)
    monkeypatch.setattr(tasks, "TICKER_RUN", 0.5)
    await asyncio.wait_for(tasks.run_while_needed(ticker), 5)
