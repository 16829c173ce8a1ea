"""Which server processes the heartbeat takes for dead: counted in ticks they did not answer."""

from __future__ import annotations

import time

import pytest

from sioless import store
from sioless.heartbeat import Ticker
from sioless.layers import InMemoryChannelLayer
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
