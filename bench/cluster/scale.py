"""Per-event cost as a deployment grows: sioless' production topology on one to three application
hosts with one to four shards (a worker a shard, spread over the hosts), driven through HAProxy by
the benchmark's lean load client (``bench/js/load.mjs``) on a host of its own; beside it, what a
python-socketio user deploys on one to three hosts (uvicorn, ``AsyncRedisManager``, HAProxy with
sticky sessions). Redis (a primary, a replica, three Sentinels) and PostgreSQL run on hosts of
their own, as in the cluster check.

For each deployment and step (an echo at 200 a second, echoes as fast as they are acked, 40
broadcasts to a room of 300): the CPU every process of every host used per event (Redis,
PostgreSQL, the Sentinels and HAProxy included) and the requests Redis answered per event, each
also as a ratio to the server's smallest deployment; for the saturated echo, the busiest worker's
share of a core, and the echoes a second at which it would use a whole core (the measured rate
divided by that share: with one shard, the shard's ceiling). Prints a Markdown table, then one JSON
line. Everything it made is removed at the end, whatever happens.

Then one broadcast after another (ten) to a room of 10,000 on each server's largest deployment,
its clients connected to the application hosts directly (HAProxy here holds 9,500 at most: two
descriptors a connection): p50/p99 of the time from a broadcast to a member's delivery.

Usage (as root): python -m bench.cluster.scale [--hosts 1 2 3] [--shards 1 2 4] [--delay-ms MS]
    [--members N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import redis

from bench.measure import cpu_seconds, process_tree, redis_requests
from bench.run import Measured, run_phase, settle

from .network import Network, can_make_namespaces
from .topology import APP_HOSTS, REDIS_PORT, SERVICE_HOSTS, Topology


class Workload(NamedTuple):
    """A step: the load client's phase and its arguments, what the client counts (the step's CPU
    is reported per one of those) and what Redis' requests are reported per (an echo, a broadcast)."""

    phase: str
    args: tuple[int, ...]
    counted: str
    unit: str
    requests_per: str


STEPS = {
    "echo at 200/s": Workload("echo", (50, 40, 4), "events", "echo", "echo"),
    "echo, saturated": Workload("echo", (50, 200), "events", "echo", "echo"),
    "broadcast to 300": Workload("broadcast", (300, 40), "deliveries", "delivery", "broadcast"),
}
SATURATED = "echo, saturated"
#: Broadcasts to the room of many.
BROADCASTS = 10
#: Seconds over which the deployment's CPU without clients is read.
IDLE_SAMPLE = 3.0


class Deployment(Measured):
    """One deployment's processes on the topology's hosts, as the load client's phases measure them
    (reached through the balancer, or at ``hosts`` directly)."""

    def __init__(self, topology: Topology, hosts: list[str] | None = None) -> None:
        self.topology = topology
        self.url = topology.url if hosts is None else ",".join(topology.app_url(name) for name in hosts)

    def client_command(self, command: list[str]) -> list[str]:
        return self.topology.network["client"].command(command)

    def cpu_parts(self, layer: redis.Redis) -> dict[str, float]:
        """CPU seconds each process used so far (PostgreSQL's processes as one)."""
        parts = {
            name: cpu_seconds(process_tree(process.popen.pid)) for name, process in self.topology.processes.items()
        }
        parts["postgres"] = cpu_seconds(self.topology.postgres_pids())
        return parts

    def requests(self, layer: redis.Redis) -> dict[str, int]:
        return redis_requests(layer)


def deploy_sioless(topology: Topology, hosts: list[str], shards: int) -> None:
    """daphne on each of ``hosts``, a worker for each shard (shard n on host n modulo their count),
    a qcluster on the first host, HAProxy without stickiness; a database and channel-layer keys of
    the deployment's own."""
    key = uuid.uuid4().hex[:8]
    topology.env = {**topology.env, "SIOLESS_TEST_SHARDS": str(shards), "SIOLESS_TEST_LAYER_PREFIX": f"sioc-{key}"}
    topology.create_database(f"scale_{key}")
    for name in hosts:
        topology.start_daphne(name)
    for shard in range(shards):
        topology.start_worker(hosts[shard % len(hosts)], shard, label=f"worker{shard}")
    topology.start_qcluster(hosts[0])
    topology.start_balancer(hosts)


def deploy_python_socketio(topology: Topology, hosts: list[str], shards: int) -> None:
    """uvicorn with python-socketio on each of ``hosts`` (``shards`` has no meaning for it); HAProxy
    with sticky sessions."""
    for name in hosts:
        topology.start_python_socketio(name)
    topology.start_balancer(hosts, sticky=True)


#: How each server is deployed on the first hosts given.
DEPLOYS = {"sioless": deploy_sioless, "python-socketio": deploy_python_socketio}


@contextmanager
def deployed(
    topology: Topology, deploy: Callable[[Topology, list[str], int], None], hosts: int, shards: int, *, direct: bool
) -> Iterator[Deployment]:
    """A deployment on the first ``hosts`` application hosts, stopped afterwards (Redis and
    PostgreSQL go on); its clients connect through the balancer, or ``direct`` to the hosts."""
    services = set(topology.processes)
    try:
        deploy(topology, APP_HOSTS[:hosts], shards)
        yield Deployment(topology, APP_HOSTS[:hosts] if direct else None)
    finally:
        topology.stop_services(*(name for name in list(topology.processes) if name not in services))


def idle_cpu(deployment: Deployment, layer: redis.Redis) -> float:
    """The share of a core the deployment uses without clients: the heartbeat, the Sentinels',
    Redis' and PostgreSQL's own timers."""
    settle(deployment, layer)
    before = deployment.cpu(layer)
    time.sleep(IDLE_SAMPLE)
    return (deployment.cpu(layer) - before) / IDLE_SAMPLE


def measure(deployment: Deployment, layer: redis.Redis) -> dict[str, dict[str, float]]:
    """Each step's figures: CPU µs per event (minus what the deployment uses idle over the same
    time), Redis requests per echo or broadcast, events a second, p50/p99 ms and events lost; for the
    saturated echo, the busiest worker's share of a core and the rate at which it would use a whole
    core."""
    idle = idle_cpu(deployment, layer)
    figures = {}
    for label, work in STEPS.items():
        done = list(run_phase(deployment, layer, work.phase, *work.args))[-1]
        count = done.result[work.counted]
        step = figures[label] = {
            "cpu_us": 1e6 * (done.cpu - idle * done.result["seconds"]) / count,
            "idle_cpu_share": idle,
            "requests": sum(done.requests.values()) / (work.args[1] if work.phase == "broadcast" else count),
            "per_s": count / done.result["seconds"],
            "p50_ms": done.result["p50"],
            "p99_ms": done.result["p99"],
            "lost": done.result["lost"],
            "load_client_cpu_us": 1e6 * done.client / count,
        }
        workers = [cpu for name, cpu in done.parts.items() if "-worker" in name]
        if label == SATURATED and workers:
            share = max(workers) / done.result["seconds"]
            step["busiest_worker_share"] = share
            step["ceiling_per_s"] = step["per_s"] / share
    return figures


def broadcast_to_many(deployment: Deployment, layer: redis.Redis, members: int) -> dict[str, float]:
    """``BROADCASTS`` broadcasts to a room of ``members``: p50/p99 ms from the broadcast to a
    member's delivery, CPU µs a delivery, deliveries lost."""
    filled, done = run_phase(deployment, layer, "broadcast", members, BROADCASTS)
    return {
        "members": filled.result["joined"],
        "p50_ms": done.result["p50"],
        "p99_ms": done.result["p99"],
        "cpu_us": 1e6 * done.cpu / done.result["deliveries"],
        "lost": done.result["lost"],
    }


def scale(hosts: list[int], shards: list[int], delay_ms: float, members: int) -> dict[str, Any]:
    """Every deployment measured: sioless for each count of hosts and shards, python-socketio for
    each count of hosts; then (unless ``members`` is 0) a broadcast to a room of ``members`` on
    each server's largest deployment, its clients connected to the application hosts directly."""
    network = Network([*SERVICE_HOSTS, *APP_HOSTS], delay_ms)
    home = Path(tempfile.mkdtemp(prefix="sioless-scale-"))
    home.chmod(0o755)
    topology = Topology(network, home)
    deployments = [("sioless", h, s) for h in hosts for s in shards] + [("python-socketio", h, 0) for h in hosts]
    results: dict[str, Any] = {"deployments": [], "broadcast_to_many": {}}
    try:
        network.create()
        topology.start_redis()
        topology.start_postgres()
        layer = redis.Redis(host=network["redis1"].address, port=REDIS_PORT)
        for server, host_count, shard_count in deployments:
            print(f"{server}: {host_count} hosts, {shard_count} shards ...", file=sys.stderr, flush=True)
            with deployed(topology, DEPLOYS[server], host_count, shard_count, direct=False) as deployment:
                measured = {"server": server, "hosts": host_count, "shards": shard_count}
                measured["steps"] = measure(deployment, layer)
            results["deployments"].append(measured)
            print(json.dumps(measured), file=sys.stderr, flush=True)
        for server, deploy in DEPLOYS.items() if members else ():
            largest = (max(hosts), max(shards) if server == "sioless" else 0)
            print(f"{server}: a broadcast to {members:,} on {largest} ...", file=sys.stderr, flush=True)
            with deployed(topology, deploy, *largest, direct=True) as deployment:
                many = {"hosts": largest[0], "shards": largest[1], **broadcast_to_many(deployment, layer, members)}
            results["broadcast_to_many"][server] = many
            print(json.dumps(many), file=sys.stderr, flush=True)
    finally:
        topology.stop()
        shutil.rmtree(home, ignore_errors=True)
    return results


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table: a row a deployment; CPU per event and requests per event of each step, with
    the ratio to the same server's first (smallest) deployment; the busiest worker's share and ceiling."""
    smallest: dict[str, dict[str, dict[str, float]]] = {}
    head = ["server", "hosts", "shards"]
    for label, work in STEPS.items():
        head += [f"{label}: CPU µs/{work.unit}", f"{label}: Redis requests/{work.requests_per}"]
    head += ["saturated echoes/s", "busiest worker, % of a core", "echoes/s with the busiest worker at a whole core"]
    lines = ["| " + " | ".join(head) + " |", "| --- | ---: | ---: |" + " ---: |" * (len(head) - 3)]
    for result in results:
        steps = result["steps"]
        first = smallest.setdefault(result["server"], steps)
        cells = [result["server"], str(result["hosts"]), str(result["shards"] or "-")]
        for label in STEPS:
            for figure in ("cpu_us", "requests"):
                value, base = steps[label][figure], first[label][figure]
                cells.append(f"{value:,.{1 if figure == 'cpu_us' else 2}f} ({value / base:.2f}x)")
        saturated = steps[SATURATED]
        cells.append(f"{saturated['per_s']:,.0f}")
        if "busiest_worker_share" in saturated:
            cells += [f"{100 * saturated['busiest_worker_share']:.0f}", f"{saturated['ceiling_per_s']:,.0f}"]
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def many_table(servers: dict[str, dict[str, float]]) -> str:
    """A Markdown table of the broadcast to many: a row a server."""
    lines = [
        "| server | hosts | shards | members | delivery p50 ms | p99 ms | CPU µs/delivery | lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for server, many in servers.items():
        figures = (many["p50_ms"], many["p99_ms"], many["cpu_us"])
        cells = [
            str(many["hosts"]),
            str(many["shards"] or "-"),
            f"{many['members']:,}",
            *(f"{f:,.1f}" for f in figures),
        ]
        lines.append(f"| {server} | " + " | ".join(cells) + f" | {many['lost']:,} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 3], choices=range(1, len(APP_HOSTS) + 1))
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--delay-ms", type=float, default=1.0)
    parser.add_argument("--members", type=int, default=10_000, help="of the room of one broadcast (0: none)")
    args = parser.parse_args()
    why_not = can_make_namespaces()
    if why_not:
        print(json.dumps({"skipped": why_not}))
        return
    results = scale(args.hosts, args.shards, args.delay_ms, args.members)
    print(table(results["deployments"]), many_table(results["broadcast_to_many"]), sep="\n\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
