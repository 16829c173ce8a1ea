"""Which server processes the heartbeat takes for dead: counted in ticks they did not answer."""

from __future__ import annotations

import time
import uuid

import pytest

from sioless import store
from sioless.heartbeat import Ticker
from sioless.layers import InMemoryChannelLayer, RedisChannelLayer
from sioless.models import EngineSession

pytestmark = pytest.mark.django_db

TICKER = "ticker-test"
INTERVAL = 0.05


@pytest.fixture(autouse=True)
def heartbeat() -> None:
    store.start_ticker(TICKER)


def open_session(sid: str, process: str) -> None:
    EngineSession.objects.create(sid=sid, shard=0, reply_channel=f"{process}!{sid}", process=process, handshake={})


def tick(*answered_by: str) -> dict[tuple[str, int], list[str]]:
    """Send the next tick; return the processes found dead; then record who answered it."""
    time.sleep(INTERVAL)
    claim = store.claim_tick(TICKER, INTERVAL, None)
    assert claim.tick is not None
    dead = store.dead_processes(claim.tick, claim.tick_before_last_at)
    store.record_alive(set(answered_by), claim.tick)
    return dead


def test_a_process_missing_two_ticks_in_a_row_is_dead_one_is_forgiven() -> None:
    open_session("a", "daphne-a")
    open_session("b", "daphne-b")
    assert tick("daphne-a", "daphne-b") == {}
    assert tick("daphne-a") == {}
    assert tick("daphne-a", "daphne-b") == {}  # daphne-b missed one tick: forgiven
    assert tick("daphne-a") == {}
    assert tick("daphne-a") == {}
    assert tick("daphne-a") == {("daphne-b", 0): ["b"]}


def test_a_pause_of_the_heartbeat_condemns_no_one() -> None:
    open_session("a", "daphne-a")
    assert tick("daphne-a") == {}
    assert tick("daphne-a") == {}
    time.sleep(40 * INTERVAL)  # the qcluster is down for many ping intervals
    assert tick("daphne-a") == {}
    assert tick("daphne-a") == {}


def test_sessions_newer_than_the_ticks_missed_are_left_alone() -> None:
    assert tick() == {}
    assert tick() == {}
    open_session("late", "daphne-new")  # a process that started after the tick before last
    assert tick() == {}
    assert tick() == {}
    assert tick() == {("daphne-new", 0): ["late"]}


async def test_no_process_is_judged_until_two_ticks_after_one_failed() -> None:
    """A tick that failed (Redis failing over) was counted, and no process heard it; its reports
    and the next tick's may be lost while their reads and sends of Redis retry."""
    ticker = Ticker(InMemoryChannelLayer(), stands_by=False)
    ticker.judge_from = 1
    ticker.tick_failed = True  # as run() notes when a tick raises
    await ticker.tick(10, None, "sioless.ticker.test!reports")
    assert (ticker.judge_from, ticker.tick_failed) == (12, False)
    await ticker.tick(11, None, "sioless.ticker.test!reports")
    assert ticker.judge_from == 12


async def test_a_ticker_taking_over_keeps_the_wait_of_the_one_before_after_redis_lost_its_data() -> None:
    """Redis lost its data (a flush, a restart): no process is judged until the workers have put
    their consumers back in the heartbeat group, by whichever ticker runs the heartbeat then (the
    next minute's run takes over from this one)."""
    layer = RedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:6379/0"}], prefix=f"siotest-{uuid.uuid4().hex}")
    try:
        first = Ticker(layer, stands_by=False)
        await first.tick(10, None, "sioless.ticker.test!reports")  # the marker is missing: Redis is new
        assert first.judge_from is not None and first.judge_from > 12
        second = Ticker(layer, stands_by=False)
        await second.tick(11, None, "sioless.ticker.test!reports")
        assert second.judge_from == first.judge_from
    finally:
        await layer.flush()
