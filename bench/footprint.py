"""What a deployment holds before any client connects: every server process of the production
recipe's topology for one host (two daphne processes, one worker for both shards, a qcluster of two
workers, as the README's process counts recommend), and python-socketio on uvicorn beside it.

Usage: make bench-footprint   (or: python -m bench.footprint)

Memory is PSS (proportional set size): a page n processes share counts 1/n in each, so what forked
processes (the qcluster's) and shared libraries share is counted once, as the machine holds it.
RSS, which counts shared pages in every process, is printed beside it. Redis' and PostgreSQL's own
memory is left out: both deployments would have them, and neither holds anything of note before a
client connects.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import uuid

import redis

from bench.measure import bench_database, memory_kib, process_tree
from bench.run import python_socketio
from demo_project.production import daphne_command, free_port
from tests.support.processes import Process

DATABASE = f"sioless_bench_{uuid.uuid4().hex[:8]}"
PREFIX = f"siobench-{uuid.uuid4().hex[:8]}"
#: Seconds the processes get after they serve: the heartbeat's first run, the first ticks.
SETTLE = 10.0


def measured(processes: dict[str, Process]) -> dict[str, dict[str, float]]:
    """Each process' RSS and PSS in MB, its children (the qcluster's) counted with it."""
    memory = {}
    for name, process in processes.items():
        rss, pss = (sum(kib) for kib in zip(*(memory_kib(pid) for pid in process_tree(process.popen.pid)), strict=True))
        memory[name] = {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1)}
    return memory


def python_socketio_memory() -> dict[str, dict[str, float]]:
    """python-socketio's process, as ``make bench`` starts it."""
    with python_socketio() as topology:
        time.sleep(SETTLE)
        return measured({"uvicorn": topology.processes[0]})


def sioless_memory() -> dict[str, dict[str, float]]:
    """The production recipe's processes for one host, on a database of their own."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo_project.settings_production",
        "SIOLESS_DEMO_DATABASE": DATABASE,
        "SIOLESS_DEMO_PREFIX": PREFIX,
        "SIOLESS_DEMO_SECRET_KEY": secrets.token_urlsafe(50),
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, "manage.py"]
    processes: dict[str, Process] = {}
    with bench_database(DATABASE, env):
        try:
            processes["qcluster"] = Process("bench-qcluster", [*manage, "qcluster"], env, stop_main_only=True)
            processes["qcluster"].wait_for_log("running.")
            processes["worker"] = Process(
                "bench-worker", [*manage, "sioless_worker", "--shard", "0", "--shard", "1"], env
            )
            processes["worker"].wait_for_log("serving shard 1")
            for n in (1, 2):
                port = free_port()
                processes[f"daphne {n}"] = Process(f"bench-daphne-{n}", daphne_command(port), env)
                processes[f"daphne {n}"].wait_for_port(port)
            time.sleep(SETTLE)
            return measured(processes)
        finally:
            for process in processes.values():
                process.stop(timeout=30)
            layer = redis.Redis(host="127.0.0.1", port=6379)
            for pattern in (f"{PREFIX}*", f"django_q:{PREFIX}*"):
                for key in layer.scan_iter(pattern):
                    layer.delete(key)


def report(servers: dict[str, dict[str, dict[str, float]]]) -> None:
    totals = {
        server: {
            figure: round(sum(process[figure] for process in memory.values()), 1) for figure in ("rss_mb", "pss_mb")
        }
        for server, memory in servers.items()
    }
    print("| server | process | PSS, MB | RSS, MB |")
    print("| --- | --- | ---: | ---: |")
    for server, memory in servers.items():
        for name, figures in memory.items():
            print(f"| {server} | {name} | {figures['pss_mb']} | {figures['rss_mb']} |")
        print(f"| {server} | **all** | **{totals[server]['pss_mb']}** | {totals[server]['rss_mb']} |")
    ratio = totals["sioless"]["pss_mb"] / totals["python-socketio"]["pss_mb"]
    print(json.dumps({"totals": totals, "pss_ratio": round(ratio, 2)}))


def main() -> None:
    report({"python-socketio": python_socketio_memory(), "sioless": sioless_memory()})


if __name__ == "__main__":
    main()
