"""The worker's state writes: those asked for meanwhile go to the database in one transaction, in
the order asked; a batch the database refuses is retried, in order, with what came after it."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import pytest
from django.db import OperationalError, connection, connections

from sioless import writes
from sioless.store import in_store_thread
from sioless.writes import OrderedWrites
from tests.app.models import Handled

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def store_connection_closed() -> AsyncIterator[None]:
    """The store's thread lets go of the test database after each test (it is dropped at the end)."""
    yield
    await in_store_thread(connections.close_all)


def record(n: int) -> None:
    """A write (in the store's thread): a row, marked with the transaction that wrote it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_current()")
        (transaction,) = cursor.fetchone()
    Handled.objects.create(sid=str(transaction), n=n)


def written() -> list[tuple[int, str]]:
    return list(Handled.objects.order_by("pk").values_list("n", "sid"))


async def test_writes_asked_for_meanwhile_share_one_transaction_in_order() -> None:
    ordered = OrderedWrites()
    await asyncio.gather(*(ordered.write(record, n) for n in range(5)))
    await ordered.write(record, 5)
    rows = await in_store_thread(written)
    assert [n for n, _ in rows] == [0, 1, 2, 3, 4, 5]
    assert len({transaction for _, transaction in rows[:5]}) == 1
    assert rows[5][1] != rows[0][1]


async def test_a_refused_batch_is_retried_in_order_with_what_came_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes, "RETRY_FIRST", 0.05)
    attempts: collections.Counter[int] = collections.Counter()

    def refused_once(n: int) -> None:
        attempts[n] += 1
        if attempts[n] == 1:
            raise OperationalError("the database went away")
        record(n)

    ordered = OrderedWrites()
    await asyncio.gather(ordered.write(record, 0), ordered.write(refused_once, 1), ordered.write(record, 2))
    assert len(ordered.backlog) == 3  # the whole batch, rolled back: row 0 too
    await ordered.write(record, 3)  # behind the backlog
    assert await ordered.caught_up(10)
    assert [n for n, _ in await in_store_thread(written)] == [0, 1, 2, 3]
