"""The connect storm: many clients connecting at once, as after a deploy or a host's loss.

Usage: make bench-storm   (or: python -m bench.storm [--connections N] [--concurrency C] [--runs R])

Each run drives python-socketio (uvicorn, one process) and then sioless (the production topology
with one daphne process, a worker for both shards, a qcluster, Redis, PostgreSQL) with the same
lean load client (``bench/js/storm.mjs``): ``N`` WebSockets, each an Engine.IO open and a Socket.IO
CONNECT, ``C`` at a time. It prints, for each, the seconds until all were connected, the connect
latency p50 and p99, and the CPU milliseconds a connection cost in each process (Redis and
PostgreSQL included, the load client's beside), then sioless' ratios to python-socketio's of the
same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
from collections.abc import Callable

import redis

from bench.run import Topology, python_socketio, sioless_production
from tests.support.processes import ROOT

STORM_CLIENT = ROOT / "bench" / "js" / "storm.mjs"
SERVERS: dict[str, Callable[[], contextlib.AbstractContextManager[Topology]]] = {
    "python-socketio": python_socketio,
    "sioless": sioless_production("daphne"),
}


def storm(
    server: Callable[[], contextlib.AbstractContextManager[Topology]], connections: int, concurrency: int
) -> dict[str, object]:
    """One storm against a freshly started ``server``: the load client's figures, and CPU ms a connection by part."""
    layer = redis.Redis(host="127.0.0.1", port=6379)
    with server() as topology:
        before = topology.cpu_parts(layer)
        command = ["node", str(STORM_CLIENT), topology.url, str(connections), str(concurrency)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
        after = topology.cpu_parts(layer)
    figures = json.loads(done.stdout)
    cpu = {part: (after[part] - before[part]) * 1000 / connections for part in after}
    return {
        "seconds": round(figures["seconds"], 2),
        "p50_ms": round(figures["p50_ms"], 1),
        "p99_ms": round(figures["p99_ms"], 1),
        "cpu_ms_per_connection": round(sum(cpu.values()), 3),
        "by_part": {part: round(ms, 3) for part, ms in cpu.items()},
        "client_cpu_ms_per_connection": round(figures["client_cpu_seconds"] * 1000 / connections, 3),
        "connected": figures["connections"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    for run in range(1, args.runs + 1):
        results = {name: storm(server, args.connections, args.concurrency) for name, server in SERVERS.items()}
        reference, ours = results["python-socketio"], results["sioless"]
        ratios = {
            figure: round(float(ours[figure]) / float(reference[figure]), 2)  # type: ignore[arg-type]
            for figure in ("seconds", "p50_ms", "p99_ms", "cpu_ms_per_connection")
        }
        print(
            json.dumps(
                {
                    "run": run,
                    "connections": args.connections,
                    "concurrency": args.concurrency,
                    **results,
                    "ratios": ratios,
                }
            )
        )


if __name__ == "__main__":
    main()
