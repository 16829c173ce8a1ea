"""What idle connections cost: 1,000 stock socket.io-client connections held through several ping
intervals on the production topology, with zero drops required.

Usage: make bench-idle   (or: python -m bench.idle [--connections N] [--window SECONDS])

Starts a qcluster, one worker a shard (2 shards), two daphne processes, on Redis and a PostgreSQL
database of its own (created, then dropped), with the default heartbeat (pings every 25 s).
Once every connection is up and the database statistics settled, it measures a window of the
hold: rows written and transactions committed in PostgreSQL, Redis ZADDs (two a channel-layer
message: queued, then held while in flight) and all Redis commands, CPU of every process (PostgreSQL and
Redis included), and the memory the connections added. It exits non-zero if a connection dropped.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import psycopg
import redis

from bench.measure import bench_database, cpu_seconds, named, process_tree, rss_bytes
from tests.support.processes import ROOT, Process, daphne, django_env, qcluster, worker

DATABASE = f"sioless_bench_{uuid.uuid4().hex[:8]}"
IDLE_CLIENT = ROOT / "bench" / "js" / "idle.mjs"
#: PostgreSQL backends flush their statistics within 10 s of going idle.
STATS_SETTLE = 11.0


@dataclass
class Sample:
    """Counters read at one instant."""

    at: float
    row_writes: dict[str, int]
    transactions: int
    layer_messages: int
    redis_commands: int
    cpu_seconds: dict[str, float]


def sample(processes: dict[str, Process], layer: redis.Redis) -> Sample:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=DATABASE) as db:
        writes = dict(
            db.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables").fetchall()
        )
        (commits,) = db.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (DATABASE,)).fetchone()  # type: ignore[misc]
    stats = layer.info("commandstats")
    cpu = {name: cpu_seconds(process_tree(process.popen.pid)) for name, process in processes.items()}
    cpu["postgres"] = cpu_seconds(named("postgres"))
    redis_cpu = layer.info("cpu")
    cpu["redis"] = float(redis_cpu["used_cpu_user"]) + float(redis_cpu["used_cpu_sys"])
    return Sample(
        at=time.monotonic(),
        row_writes=writes,
        transactions=int(commits),
        layer_messages=int(stats.get("cmdstat_zadd", {}).get("calls", 0)),
        redis_commands=sum(int(command["calls"]) for command in stats.values()),
        cpu_seconds=cpu,
    )


def server_memory(processes: dict[str, Process], layer: redis.Redis) -> int:
    """Bytes held by the daphne and worker processes and by Redis."""
    pids = [pid for name, process in processes.items() if name != "qcluster" for pid in process_tree(process.popen.pid)]
    return rss_bytes(pids) + int(layer.info("memory")["used_memory"])


def report(connections: int, start: Sample, end: Sample, memory: int, held: dict[str, object]) -> None:
    minutes = (end.at - start.at) / 60
    print(f"{connections} idle connections, {minutes * 60:.0f} s measured, held: {json.dumps(held)}")
    print(f"  {'':44} {'per minute':>12} {'per conn. per min.':>20}")
    for what, count in (
        *(
            (f"rows written to {table}", end.row_writes[table] - start.row_writes[table])
            for table in sorted(end.row_writes)
            if end.row_writes[table] != start.row_writes[table]
        ),
        ("database transactions committed", end.transactions - start.transactions),
        ("Redis ZADD (2 a channel-layer message)", end.layer_messages - start.layer_messages),
        ("Redis commands, all", end.redis_commands - start.redis_commands),
    ):
        print(f"  {what:44} {count / minutes:12.1f} {count / minutes / connections:20.4f}")
    print("  CPU, % of one core:")
    for name in end.cpu_seconds:
        print(f"    {name:42} {100 * (end.cpu_seconds[name] - start.cpu_seconds[name]) / (minutes * 60):12.2f}")
    print(f"  memory per idle connection (daphne, workers, Redis): {memory / connections / 1024:.1f} KiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--window", type=float, default=90.0, help="seconds measured (default: 3.6 ping intervals)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers on the way out
    env = django_env(
        "tests.settings",
        SIOLESS_TEST_DB_NAME=DATABASE,
        SIOLESS_TEST_LAYER_PREFIX=f"siobench-{uuid.uuid4().hex[:8]}",
    )
    layer = redis.Redis(host="127.0.0.1", port=6379)
    processes: dict[str, Process] = {}
    with bench_database(DATABASE, env):
        try:
            processes["qcluster"] = qcluster("bench-qcluster", env)
            for shard in (0, 1):
                processes[f"worker{shard}"] = worker(f"bench-worker{shard}", env, shard)
            urls = []
            for name in ("daphne-a", "daphne-b"):
                processes[name], url = daphne(f"bench-{name}", env)
                urls.append(url)
            memory_before = server_memory(processes, layer)
            hold = STATS_SETTLE + args.window + 5
            command = ["node", str(IDLE_CLIENT), str(args.connections), str(hold), *urls]
            with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as clients:
                assert clients.stdout is not None
                ready = json.loads(clients.stdout.readline())
                print(f"{args.connections} connections up in {ready['connectSeconds']:.1f} s")
                memory = server_memory(processes, layer) - memory_before
                time.sleep(STATS_SETTLE)
                start = sample(processes, layer)
                time.sleep(args.window)
                end = sample(processes, layer)
                held = json.loads(clients.stdout.readline())
        finally:
            for process in processes.values():
                process.stop()
    report(args.connections, start, end, memory, held)
    return 0 if held["connected"] == args.connections and not held["disconnects"] else 1


if __name__ == "__main__":
    sys.exit(main())
