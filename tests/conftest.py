"""Fixtures that start the real topologies: production (daphne x2, workers, Redis,
PostgreSQL) and development (runserver, one process)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from django.db import connection

from tests.processes import Process, daphne, django_env, free_port, worker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of real servers need the test database created (pytest-django makes it only for
    ``django_db`` tests); plain ``django_db``, so no flush wipes what the servers hold."""
    for item in items:
        if {"production", "development", "topology", "hibernating"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.django_db)


@dataclass
class Topology:
    """Running processes and the URLs clients use."""

    urls: list[str]
    processes: dict[str, Process] = field(default_factory=dict)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


@pytest.fixture(scope="session")
def production(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> Iterator[Topology]:
    """Two daphne processes and two workers (one a shard) on Redis and PostgreSQL."""
    env = django_env("tests.settings", SIOLESS_TEST_DB_NAME=connection.settings_dict["NAME"])
    topology = Topology(urls=[])
    try:
        for shard in (0, 1):
            topology.processes[f"worker{shard}"] = worker(f"worker{shard}", env, shard)
        for name in ("daphne-a", "daphne-b"):
            process, url = daphne(name, env)
            topology.processes[name] = process
            topology.urls.append(url)
        yield topology
    finally:
        topology.stop()


@pytest.fixture(scope="session")
def development(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """``manage.py runserver`` with SQLite and the in-memory layer: everything in one process."""
    env = django_env("tests.settings_dev", SIOLESS_TEST_SQLITE=str(tmp_path_factory.mktemp("dev") / "db.sqlite3"))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True, timeout=60)
    port = free_port()
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    process = Process("runserver", command, env)
    topology = Topology(urls=[f"http://127.0.0.1:{port}"], processes={"runserver": process})
    try:
        process.wait_for_port(port)
        yield topology
    finally:
        topology.stop()
