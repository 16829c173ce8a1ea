"""Fixtures that start the real topologies: production (daphne x2, workers, Redis,
PostgreSQL) and development (runserver, one process)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from django.db import connection

from tests.processes import Process, daphne, django_env, qcluster, round_robin_proxy, runserver, worker

#: Fixtures that start real servers.
TOPOLOGIES = {"production", "development", "topology", "hibernating", "beating"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of real servers need the test database created (pytest-django makes it only for
    ``django_db`` tests); plain ``django_db``, so no flush wipes what the servers hold."""
    for item in items:
        if TOPOLOGIES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.django_db)


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


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll state outside this process until ``condition()`` holds; TimeoutError after ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (the state is in other processes: nothing to await)
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def own_database(suffix: str) -> Iterator[str]:
    """A migrated database of its own, for servers that must not see the other tests' state."""
    name = f"{connection.settings_dict['NAME']}_{suffix}"
    admin_sql(f'DROP DATABASE IF EXISTS "{name}"')
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        env = django_env("tests.settings", SIOLESS_TEST_DB_NAME=name)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True, timeout=120)
        yield name
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Topology:
    """Running processes, the URLs clients use, and the environment and database they run with."""

    urls: list[str]
    processes: dict[str, Process] = field(default_factory=dict)
    #: A URL whose requests go to every server in turn (the one server, in development).
    balancer: str = ""
    env: dict[str, str] = field(default_factory=dict)
    database: str = ""

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


@contextlib.contextmanager
def topology_of_its_own(name: str, **settings: str) -> Iterator[Topology]:
    """The production topology on a database and channel-layer keys of its own, with ``settings``
    (``SIOLESS_TEST_*`` environment variables): a worker for both shards, two daphne processes,
    a qcluster, and the balancer, whose URL comes last in ``urls``."""
    with own_database(name) as database:
        env = django_env(
            "tests.settings",
            SIOLESS_TEST_DB_NAME=database,
            SIOLESS_TEST_LAYER_PREFIX=f"siotest-{name}-{uuid.uuid4().hex[:8]}",
            **settings,
        )
        topology = Topology(urls=[], env=env, database=database)
        try:
            topology.processes["worker"] = worker(f"{name}-worker", env, 0, 1)
            for server in (f"{name}-daphne-a", f"{name}-daphne-b"):
                process, url = daphne(server, env)
                topology.processes[server] = process
                topology.urls.append(url)
            topology.processes["proxy"], topology.balancer = round_robin_proxy(f"{name}-proxy", *topology.urls)
            topology.urls.append(topology.balancer)
            topology.processes["qcluster"] = qcluster(f"{name}-qcluster", env)
            yield topology
        finally:
            topology.stop()


@pytest.fixture(scope="session")
def production(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> Iterator[Topology]:
    """Two daphne processes, two workers (one a shard) and a qcluster on Redis and PostgreSQL."""
    env = django_env("tests.settings", SIOLESS_TEST_DB_NAME=connection.settings_dict["NAME"])
    topology = Topology(urls=[], env=env, database=connection.settings_dict["NAME"])
    try:
        topology.processes["qcluster"] = qcluster("qcluster", env)
        for shard in (0, 1):
            topology.processes[f"worker{shard}"] = worker(f"worker{shard}", env, shard)
        for name in ("daphne-a", "daphne-b"):
            process, url = daphne(name, env)
            topology.processes[name] = process
            topology.urls.append(url)
        topology.processes["balancer"], topology.balancer = round_robin_proxy("balancer", *topology.urls)
        yield topology
    finally:
        topology.stop()


@pytest.fixture(scope="session")
def development(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """``manage.py runserver`` with SQLite and the in-memory layer: everything in one process."""
    env = django_env("tests.settings_dev", SIOLESS_TEST_SQLITE=str(tmp_path_factory.mktemp("dev") / "db.sqlite3"))
    process, url = runserver("runserver", env)
    topology = Topology(urls=[url], processes={"runserver": process}, balancer=url, env=env)
    try:
        yield topology
    finally:
        topology.stop()
