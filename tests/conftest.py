"""Fixtures: the real topologies (production: daphne x2, workers, Redis, PostgreSQL; development:
runserver, one process) for the end-to-end tier, and the server in the test's own process for the
fast tier. Helpers live in :mod:`tests.support`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from unittest import mock

import pytest
from django.db import connection
from pytest_django.fixtures import Settings

from sioless.worker import Worker
from tests.support.inprocess import served
from tests.support.processes import daphne, django_env, qcluster, round_robin_proxy, runserver, worker
from tests.support.topologies import Topology

#: Fixtures that start real servers: a test that uses one is of the end-to-end tier.
TOPOLOGIES = {"production", "development", "topology", "hibernating", "beating"}


#: Set by ``make test-fast``: the fast tier, which starts no process.
FAST_TIER = os.environ.get("SIOLESS_TEST_TIER") == "fast"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of real servers are of the end-to-end tier (``e2e``), and need the test database
    created (pytest-django makes it only for ``django_db`` tests); plain ``django_db``, so no flush
    wipes what the servers hold."""
    for item in items:
        if TOPOLOGIES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.django_db)


@pytest.fixture(scope="session", autouse=True)
def no_process_in_the_fast_tier() -> Iterator[None]:
    """In the fast tier, starting a process fails the test: one that needs a server is ``e2e``."""
    if not FAST_TIER:
        yield
        return
    refusal = RuntimeError("the fast tier starts no process: mark the test e2e")
    with mock.patch.object(subprocess.Popen, "__init__", side_effect=refusal):
        yield


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


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """Settings of the in-process server: one shard, sioless' in-memory layer, no embedded worker."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "sioless.layers.InMemoryChannelLayer"}}
    settings.SIOLESS = {**settings.SIOLESS, "SHARDS": 1, "EMBEDDED_WORKER": False}
    return settings


@pytest.fixture
async def in_process_worker(fast_settings: Settings, transactional_db: None) -> AsyncIterator[Worker]:
    """A worker serving every shard in the test's process, with the test project's handlers."""
    async with served() as running:
        yield running
