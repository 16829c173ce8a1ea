"""Topologies of real processes: the production one (daphne x2, workers, qcluster, a balancer, on
Redis and PostgreSQL) on a database of its own, and what a test holds of one."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import connection

from tests.support.database import admin_sql
from tests.support.processes import Process, daphne, django_env, qcluster, round_robin_proxy, worker


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

    @property
    def parser(self) -> str:
        """The Socket.IO parser its servers speak (``SIOLESS["PARSER"]``)."""
        return self.env.get("SIOLESS_TEST_PARSER", "default")

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
