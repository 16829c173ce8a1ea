"""The worker's state writes: those asked for meanwhile go to the database in one transaction, in
the order asked; a batch the database refuses is retried, in order, with what came after it."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.db import OperationalError, connection, connections

from sioless import writes
from sioless.fields import encoded
from sioless.models import EngineSession, NamespaceSocket, RoomMembership
from sioless.store import NewSession, NewSocket, in_store_thread, save_sockets
from sioless.writes import OrderedWrites
from tests.app.models import Handled

pytestmark = pytest.mark.django_db(transaction=True)

#: The tables a new socket is written to, in the order it is.
SAVED = (EngineSession, NamespaceSocket, RoomMembership)


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


async def test_sockets_saved_meanwhile_take_an_insert_a_table() -> None:
    """A burst of connections: the sockets (their sessions, their rooms) saved meanwhile are
    inserted together, a statement a table, with the other writes in order around them."""
    statements: list[str] = []

    def recording(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    new = [
        NewSocket(
            f"eio{n}", f"sid{n}", "/", None, encoded({}), {f"sid{n}", "room"}, new_session=NewSession(0, f"p!{n}", {})
        )
        for n in range(3)
    ]
    await in_store_thread(lambda: connection.execute_wrappers.append(recording))  # the thread's connection
    try:
        ordered = OrderedWrites()
        await asyncio.gather(
            ordered.write(record, 0), *(ordered.write(save_sockets, socket) for socket in new), ordered.write(record, 1)
        )
    finally:
        await in_store_thread(lambda: connection.execute_wrappers.remove(recording))
    inserts = [sql.split()[2].strip('"') for sql in statements if sql.startswith("INSERT")]
    tables = [model._meta.db_table for model in SAVED]
    assert inserts == [Handled._meta.db_table, *tables, Handled._meta.db_table]
    counts = await in_store_thread(lambda: [model.objects.count() for model in SAVED])
    assert counts == [3, 3, 3]


def unstorable(n: int) -> None:
    """A write that can never succeed (as a value no encoder takes)."""
    raise TypeError(f"write {n} cannot be stored")


async def test_a_write_that_can_never_succeed_is_dropped_and_the_others_made() -> None:
    ordered = OrderedWrites()
    await asyncio.gather(ordered.write(record, 0), ordered.write(unstorable, 1), ordered.write(record, 2))
    await ordered.write(record, 3)
    assert await ordered.caught_up(5)
    assert not ordered.backlog
    assert [n for n, _ in await in_store_thread(written)] == [0, 2, 3]


async def test_an_outage_longer_than_the_backlog_loses_changes_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(writes, "MAX_BACKLOG", 3)
    monkeypatch.setattr(writes, "RETRY_FIRST", 0.05)
    database_away = True

    def refused_while_away(n: int) -> None:
        if database_away:
            raise OperationalError("the database went away")
        record(n)

    ordered = OrderedWrites()
    await ordered.write(refused_while_away, 0)
    for n in range(1, 6):
        await ordered.write(refused_while_away, n)
    assert len(ordered.backlog) == 3 and ordered.lost == 3
    assert "backlog of 3 state changes is full" in caplog.text
    database_away = False
    assert await ordered.caught_up(10)
    assert [n for n, _ in await in_store_thread(written)] == [0, 1, 2]
    assert "lost 3 state changes" in caplog.text
