"""The databases the servers of the end-to-end tests use, read and made outside the test's own
connection (and its transaction)."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any

import psycopg
from django.db import connection

if TYPE_CHECKING:
    from tests.support.topologies import Topology


def admin_sql(statement: str) -> None:
    """Run a statement on the server's maintenance database (CREATE or DROP DATABASE)."""
    with psycopg.connect(host="127.0.0.1", user=connection.settings_dict["USER"], dbname="postgres") as admin:
        admin.autocommit = True
        admin.execute(statement)


def sql(database: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows a query returns from a database the servers use (outside the test's transaction)."""
    with psycopg.connect(host="127.0.0.1", user=connection.settings_dict["USER"], dbname=database) as db:
        return db.execute(statement, params).fetchall()


def topology_sql(topology: Topology, statement: str) -> list[tuple[Any, ...]]:
    """The rows a query returns from the database of a topology: PostgreSQL, or development's SQLite."""
    if topology.database:
        return sql(topology.database, statement)
    with contextlib.closing(sqlite3.connect(topology.env["SIOLESS_TEST_SQLITE"])) as db:
        return db.execute(statement).fetchall()
