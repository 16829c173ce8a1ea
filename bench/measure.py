"""Reading what processes cost from /proc, what Redis was asked, and a PostgreSQL database of a
benchmark's own."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis

from sioless.layers import scripts
from tests.support.processes import ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def admin_sql(statement: str) -> None:
    """Run a statement on the server's maintenance database."""
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(statement)


@contextlib.contextmanager
def bench_database(name: str, env: dict[str, str]) -> Iterator[None]:
    """A freshly migrated PostgreSQL database ``name`` for one run, dropped afterwards."""
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
        yield
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: The commands sioless' Lua scripts call (Redis counts each call inside a script as a command of
#: its own) but ZREM, which sioless also sends alone: a worker's acknowledgement of its messages
#: (its scripts call it for a leave, which no benchmark step makes).
SCRIPTED_COMMANDS = {
    command.lower()
    for text in vars(scripts).values()
    if isinstance(text, str)
    for command in re.findall(r"redis\.call\('(\w+)'", text)
} - {"zrem"}


def redis_requests(server: redis.Redis) -> dict[str, int]:
    """How many requests of each command Redis answered so far (a script run is one ``evalsha``;
    the commands it calls are not requests), but for the ``info`` that reads them."""
    stats = server.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}
    return {name: count for name, count in calls.items() if name not in SCRIPTED_COMMANDS and name != "info"}


def process_tree(root: int) -> list[int]:
    """``root`` and every process in its session (the started process and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == os.getsid(root):
                    found.append(int(entry.name))
    return found


def named(command: str) -> list[int]:
    """Every process whose executable name is ``command``."""
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == command:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds the processes used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of the processes, in bytes."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    return total


def memory_kib(pid: int) -> tuple[int, int]:
    """A process' resident memory and its proportional share of it (RSS, PSS), in KiB: a page n
    processes share counts fully in each one's RSS, and 1/n in each one's PSS."""
    fields = dict(line.split()[:2] for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    return int(fields["Rss:"]), int(fields["Pss:"])
