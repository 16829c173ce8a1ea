"""Services of a test's own, for tests that break them: a redis-server (or Sentinel) killed by PID,
a PostgreSQL cluster stopped and started. The machine's shared Redis and PostgreSQL are never touched."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from demo_project.production import free_port
from tests.support.processes import Process

PG_BIN = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])


@dataclass
class RedisServer:
    """A redis-server of the test's own, started and killed by PID."""

    port: int = field(default_factory=free_port)
    process: Process | None = None
    #: More arguments of redis-server (``--replicaof``, or a Sentinel's configuration file and ``--sentinel``).
    options: list[str] = field(default_factory=list)

    def start(self) -> None:
        command = ["redis-server", *self.options, "--port", str(self.port), "--bind", "127.0.0.1"]
        if "--sentinel" not in self.options:  # no files; a replica's sync file out of the checkout
            command += ["--save", "", "--appendonly", "no", "--dir", tempfile.gettempdir()]
            command += ["--dbfilename", f"sioless-faults-{self.port}.rdb"]
        self.process = Process(f"faults-redis-{self.port}", command, dict(os.environ))
        self.process.wait_for_port(self.port)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill(signal.SIGKILL)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster of the test's own (initdb, pg_ctl), run as the postgres user."""

    directory: Path
    port: int = field(default_factory=free_port)

    def run(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, timeout=60, capture_output=True)

    def create(self) -> None:
        self.directory.mkdir(parents=True)
        subprocess.run(["chown", "postgres", str(self.directory)], check=True)
        self.run(str(PG_BIN / "initdb"), "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres")
        self.start()
        self.run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "faults")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        log = str(self.directory / "server.log")
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def rows(self, statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="faults") as db:
            return db.execute(statement).fetchall()
