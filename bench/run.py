"""sioless against python-socketio and Node's socket.io, on this machine.

Usage: make bench   (or: python -m bench.run [--quick] [--only NAME ...])

Starts each server in turn with the same handlers (echo with ack, join a room, broadcast to a
room) and the same heartbeat (pings every 5 s), drives it with one lean load client (raw
WebSockets under Node, on loopback; its own CPU is reported next to the servers') and reads the
servers' CPU and memory from /proc, every process of a topology counted (Redis and PostgreSQL
too, each also listed on its own):

- storm: 1,000 connections, 100 at a time; then an idle hold of 4 ping intervals;
- echo at a pace: 50 clients x 40 acked echoes, each client 4 a second (200 events/s: no server
  here is saturated by it);
- echo, saturated: 50 clients x 1,000 acked echoes, each client one after another;
- broadcast: 500 receivers connect and join a room (the room filled); then 100 broadcasts to it.

Prints Markdown tables (also written to bench/RESULTS.md) with each figure's ratio to
python-socketio's, measured in the same run before and after each server: a server's ratios are
to the mean of the two measurements next to it; then each target of sioless (``TARGETS``) with
its ratio, and the requests Redis answered for an echo, a broadcast and a connect and join, by
command.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.measure import bench_database, cpu_seconds, named, process_tree, redis_requests, rss_bytes
from demo_project.production import daphne_command, free_port
from tests.support.processes import ROOT, Process, daphne, django_env, qcluster, runserver, worker

LOAD_CLIENT = ROOT / "bench" / "js" / "load.mjs"
RESULTS = ROOT / "bench" / "RESULTS.md"
#: A database of each run's own: a run never meets another's shard leases or sessions.
DATABASE = f"sioless_bench_{uuid.uuid4().hex[:8]}"
PING_INTERVAL = PING_TIMEOUT = 5.0
PHASES = {
    "storm": (1000, 4 * PING_INTERVAL),
    "paced": (50, 40, 4),
    "echo": (50, 1000),
    "broadcast": (500, 100),
}
#: The servers count as idle below this share of a core (the heartbeat's own work is far below).
IDLE_CPU = 0.05
SETTLE_SAMPLE = 0.5
QUICK_PHASES = {"storm": (200, 2 * PING_INTERVAL), "paced": (10, 8, 4), "echo": (10, 200), "broadcast": (100, 20)}


class Measured(abc.ABC):
    """What the load client's phases need of the servers they drive: where to reach them, how to
    start the client, and what the servers (and Redis) did so far."""

    url: str

    def client_command(self, command: list[str]) -> list[str]:
        """The load client's ``command`` as run beside the servers: as it is, on this machine."""
        return command

    @abc.abstractmethod
    def cpu_parts(self, layer: redis.Redis) -> dict[str, float]:
        """CPU seconds each part of the servers used so far."""

    def cpu(self, layer: redis.Redis) -> float:
        """CPU seconds every part used so far."""
        return sum(self.cpu_parts(layer).values())

    @abc.abstractmethod
    def requests(self, layer: redis.Redis) -> dict[str, int]:
        """The requests Redis answered so far, by command."""


@dataclass
class Topology(Measured):
    """The processes of one server under test, and what else it uses."""

    url: str
    processes: list[Process]
    uses_redis: bool = False
    uses_postgres: bool = False

    def cpu_parts(self, layer: redis.Redis) -> dict[str, float]:
        """CPU seconds each part of the topology used so far: each process (with its children),
        Redis and PostgreSQL."""
        parts = {
            process.name.removeprefix("bench-"): cpu_seconds(process_tree(process.popen.pid))
            for process in self.processes
        }
        if self.uses_redis:
            stats = layer.info("cpu")
            parts["redis"] = float(stats["used_cpu_user"]) + float(stats["used_cpu_sys"])
        if self.uses_postgres:
            parts["postgres"] = cpu_seconds(named("postgres"))
        return parts

    def requests(self, layer: redis.Redis) -> dict[str, int]:
        """The requests Redis answered so far, by command (none for a topology without Redis)."""
        return redis_requests(layer) if self.uses_redis else {}

    def memory_parts(self, layer: redis.Redis) -> dict[str, int]:
        """Bytes resident in each server process (with its children), and in Redis' data."""
        parts = {
            process.name.removeprefix("bench-"): rss_bytes(process_tree(process.popen.pid))
            for process in self.processes
        }
        if self.uses_redis:
            parts["redis"] = int(layer.info("memory")["used_memory"])
        return parts

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def sioless_env(settings: str, **extra: str) -> dict[str, str]:
    """The test settings, with the benchmark's heartbeat and channel-layer keys of its own."""
    return django_env(
        settings,
        SIOLESS_TEST_PING_INTERVAL=str(PING_INTERVAL),
        SIOLESS_TEST_PING_TIMEOUT=str(PING_TIMEOUT),
        SIOLESS_TEST_LAYER_PREFIX=f"siobench-{uuid.uuid4().hex[:8]}",
        **extra,
    )


@contextlib.contextmanager
def python_socketio() -> Iterator[Topology]:
    port = free_port()
    env = {**os.environ, "SIOLESS_BENCH_PING": f"{PING_INTERVAL},{PING_TIMEOUT}"}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.servers.pysio:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = Process("bench-python-socketio", command, env)
    with stopping(Topology(f"http://127.0.0.1:{port}", [process])) as topology:
        process.wait_for_port(port)
        yield topology


@contextlib.contextmanager
def node_socketio() -> Iterator[Topology]:
    port = free_port()
    ping = [str(int(PING_INTERVAL * 1000)), str(int(PING_TIMEOUT * 1000))]
    process = Process(
        "bench-node-socketio", ["node", str(ROOT / "bench" / "js" / "server.mjs"), str(port), *ping], dict(os.environ)
    )
    with stopping(Topology(f"http://127.0.0.1:{port}", [process])) as topology:
        process.wait_for_port(port)
        yield topology


def floor(name: str, application: str) -> Callable[[], contextlib.AbstractContextManager[Topology]]:
    """A floor server (``bench/servers``) on daphne: one process serving ``application``."""

    @contextlib.contextmanager
    def start() -> Iterator[Topology]:
        port = free_port()
        process = Process(f"bench-{name}", daphne_command(port, application=application), dict(os.environ))
        with stopping(Topology(f"http://127.0.0.1:{port}", [process])) as topology:
            process.wait_for_port(port)
            yield topology

    return start


@contextlib.contextmanager
def sioless_development() -> Iterator[Topology]:
    with tempfile.TemporaryDirectory() as directory:
        env = sioless_env("tests.settings_dev", SIOLESS_TEST_SQLITE=f"{directory}/db.sqlite3")
        process, url = runserver("bench-runserver", env)
        with stopping(Topology(url, [process])) as topology:
            yield topology


def sioless_production(
    asgi_server: str, layer: str = "sioless.layers.RedisChannelLayer", **options: str
) -> Callable[[], contextlib.AbstractContextManager[Topology]]:
    """One ASGI server process (daphne or uvicorn), a worker for both shards, a qcluster, Redis
    (through the channel layer ``layer``), PostgreSQL; ``options``: more SIOLESS_TEST_* settings."""

    @contextlib.contextmanager
    def start() -> Iterator[Topology]:
        settings = {"SIOLESS_TEST_DB_NAME": DATABASE, "SIOLESS_TEST_LAYER_BACKEND": layer, **options}
        env = sioless_env("tests.settings", SIOLESS_TEST_LOG_LEVEL="INFO", **settings)
        prefix = env["SIOLESS_TEST_LAYER_PREFIX"]
        with (
            bench_database(DATABASE, env),
            forgetting(prefix),
            stopping(Topology("", [], uses_redis=True, uses_postgres=True)) as topology,
        ):
            topology.processes += [qcluster("bench-qcluster", env), worker("bench-worker", env, 0, 1)]
            quiet = {**env, "SIOLESS_TEST_LOG_LEVEL": "WARNING"}
            if asgi_server == "daphne":
                process, topology.url = daphne("bench-daphne", quiet)
            else:
                port = free_port()
                command = [sys.executable, "-m", "uvicorn", "demo_project.asgi:application", "--port", str(port)]
                process = Process("bench-uvicorn", [*command, "--lifespan", "off", "--log-level", "warning"], quiet)
                topology.url = f"http://127.0.0.1:{port}"
                process.wait_for_port(port)
            topology.processes.append(process)
            yield topology

    return start


@contextlib.contextmanager
def forgetting(prefix: str) -> Iterator[None]:
    """Delete the Redis keys of a run (channel layer, groups, django-q2's queue) after it."""
    try:
        yield
    finally:
        keys = redis.Redis(host="127.0.0.1", port=6379)
        for pattern in (f"{prefix}*", f"django_q:{prefix}*"):
            for key in keys.scan_iter(pattern):
                keys.delete(key)


@contextlib.contextmanager
def stopping(topology: Topology) -> Iterator[Topology]:
    try:
        yield topology
    finally:
        topology.stop()


SERVERS: dict[str, Callable[[], contextlib.AbstractContextManager[Topology]]] = {
    "python-socketio (uvicorn)": python_socketio,
    "Node socket.io": node_socketio,
    "daphne floor (bare ASGI app)": floor("daphne-floor", "bench.servers.floor:app"),
    "Channels floor (stock consumer and layer)": floor("channels-floor", "bench.servers.channels_floor:application"),
    "sioless development (runserver)": sioless_development,
    "sioless production (daphne)": sioless_production("daphne"),
    "sioless production (uvicorn)": sioless_production("uvicorn"),
    "sioless production (daphne, recovery on)": sioless_production("daphne", SIOLESS_TEST_RECOVERY="1"),
}
#: Run with --only: plain channels-redis under the storm exhausts redis-py's pool in daphne
#: ("Too many connections"), and the echo phase then waits out a timeout for every lost ack.
COMPARISONS = {
    "sioless production (daphne, plain channels-redis)": sioless_production(
        "daphne", "channels_redis.core.RedisChannelLayer"
    ),
}
BASELINE = "python-socketio (uvicorn)"
#: sioless' targets: a figure's ratio to python-socketio's, at most.
TARGETS = {
    "sioless development (runserver)": {
        "echo, saturated: CPU µs/event": 1.0,
        "broadcast: CPU µs/delivery": 0.7,
        "connect: CPU ms/connection": 1.5,
        "idle: memory KiB/connection": 1.0,
    },
    "sioless production (daphne)": {
        "echo, saturated: CPU µs/event": 3.0,
        "broadcast: CPU µs/delivery": 0.7,
        "room filled, then broadcast: CPU µs/delivery": 1.2,
        "connect: CPU ms/connection": 2.0,
        "echo at 200/s: p50 ms": 2.0,
        "idle: memory KiB/connection": 1.0,
    },
}
#: Figures whose every measurement of the baseline the report gives.
DRIFT_FIGURES = ("connect: CPU ms/connection", "echo, saturated: CPU µs/event", "broadcast: CPU µs/delivery")


@dataclass
class Results:
    """What one server did in every phase."""

    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: CPU µs per echo at a pace and per saturated echo, by part of the topology.
    parts: dict[str, dict[str, float]] = field(default_factory=dict)
    #: KiB per idle connection, by part of the topology.
    memory: dict[str, float] = field(default_factory=dict)
    #: Requests to Redis per echo (at a pace, saturated), per broadcast and per connect and join,
    #: by command.
    requests: dict[str, dict[str, float]] = field(default_factory=dict)


def settle(topology: Measured, layer: redis.Redis) -> None:
    """Wait (up to 30 s) until the servers are idle: what the last step left them doing (closing
    its connections) is not counted in the next."""
    for _ in range(60):
        before = topology.cpu(layer)
        time.sleep(SETTLE_SAMPLE)
        if topology.cpu(layer) - before < IDLE_CPU * SETTLE_SAMPLE:
            return


@dataclass
class Step:
    """What one step of the load client measured, and the CPU seconds it cost."""

    result: dict[str, Any]
    #: The servers' CPU, by part of the topology.
    parts: dict[str, float]
    client: float
    #: The requests Redis answered, by command.
    requests: dict[str, int]

    @property
    def cpu(self) -> float:
        return sum(self.parts.values())


#: The load client's phases of more than one step.
STEPS = {"storm": 2, "broadcast": 2}


def run_phase(topology: Measured, layer: redis.Redis, phase: str, *args: int) -> Iterator[Step]:
    """Run a load-client phase; yield each step's result with the CPU the servers and the client
    used in it."""
    command = topology.client_command(["node", str(LOAD_CLIENT), phase, topology.url, *map(str, args)])
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as client:
        assert client.stdin is not None and client.stdout is not None
        for _ in range(STEPS.get(phase, 1)):
            # the client's set-up (its connections, its joins) is done and settled before counting
            wait_until_ready(client, phase)
            settle(topology, layer)
            before, client_before = topology.cpu_parts(layer), cpu_seconds([client.pid])
            requests_before = topology.requests(layer)
            measured = run_step(client, phase)
            after, requests_after = topology.cpu_parts(layer), topology.requests(layer)
            parts = {part: after[part] - before[part] for part in after}
            requests = {
                name: count - requests_before.get(name, 0)
                for name, count in requests_after.items()
                if count != requests_before.get(name, 0)
            }
            yield Step(measured, parts, cpu_seconds([client.pid]) - client_before, requests)
        client.stdin.write("end\n")
        client.stdin.flush()


def wait_until_ready(client: subprocess.Popen[str], phase: str) -> None:
    """Wait for the load client (``bench/js/load.mjs``) to have set its next step up."""
    assert client.stdout is not None
    if client.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the load client failed before {phase}")


def run_step(client: subprocess.Popen[str], phase: str) -> dict[str, Any]:
    """Let the load client run the step it set up; what it measured."""
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write("go\n")
    client.stdin.flush()
    line = client.stdout.readline()
    if not line:
        raise RuntimeError(f"the load client failed in {phase}")
    return dict(json.loads(line))


def measure(topology: Topology, layer: redis.Redis, phases: dict[str, tuple[int | float, ...]]) -> Results:
    results = Results()
    figures = results.figures
    connections, hold = phases["storm"]
    memory_before = topology.memory_parts(layer)
    storm = run_phase(topology, layer, "storm", int(connections), int(hold))
    opened = next(storm)
    figures["connect: connections/s"] = opened.result["connections"] / opened.result["seconds"]
    figures["connect: CPU ms/connection"] = 1000 * opened.cpu / connections
    figures["connect: load client's CPU ms/connection"] = 1000 * opened.client / connections
    memory_after = topology.memory_parts(layer)
    results.memory = {part: (memory_after[part] - memory_before[part]) / connections / 1024 for part in memory_after}
    figures["idle: memory KiB/connection"] = sum(results.memory.values())
    held = next(storm)
    figures["idle: CPU % of a core"] = 100 * held.cpu / held.result["seconds"]
    if held.result["connected"] != connections or held.result["disconnects"]:
        results.notes.append(f"idle: {connections - held.result['connected']} dropped {held.result['disconnects']}")
    list(storm)
    for phase, label, counted, unit in (
        ("paced", "echo at 200/s", "events", "event"),
        ("echo", "echo, saturated", "events", "event"),
        ("broadcast", "broadcast", "deliveries", "delivery"),
    ):
        steps = run_phase(topology, layer, "echo" if phase == "paced" else phase, *map(int, phases[phase]))
        filled = next(steps) if phase == "broadcast" else None
        done = next(steps)
        list(steps)  # the client closes its connections and exits
        count = done.result[counted]
        if phase != "paced":
            figures[f"{label}: {counted}/s"] = count / done.result["seconds"]
        figures[f"{label}: p50 ms"], figures[f"{label}: p99 ms"] = done.result["p50"], done.result["p99"]
        figures[f"{label}: CPU µs/{unit}"] = 1e6 * done.cpu / count
        figures[f"{label}: load client's CPU µs/{unit}"] = 1e6 * done.client / count
        if filled is None:
            results.parts[label] = {part: 1e6 * cpu / count for part, cpu in done.parts.items()}
            results.requests[f"an event of {label}"] = {name: calls / count for name, calls in done.requests.items()}
        else:
            figures[f"room filled, then {label}: CPU µs/{unit}"] = 1e6 * (filled.cpu + done.cpu) / count
            broadcasts, joins = phases[phase][1], filled.result["joined"]
            results.requests["a broadcast"] = {name: calls / broadcasts for name, calls in done.requests.items()}
            results.requests["a connect and join"] = {name: calls / joins for name, calls in filled.requests.items()}
        if done.result["lost"]:
            results.notes.append(f"{label}: {done.result['lost']} {counted} never answered")
    return results


def averaged(runs: list[Results]) -> Results:
    """The mean of several measurements of one server, with the spread of the drift figures noted."""

    def mean(measured: list[dict[str, float]]) -> dict[str, float]:
        return {key: sum(figures.get(key, 0.0) for figures in measured) / len(measured) for key in measured[0]}

    def mean_by_step(measured: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
        return {step: mean([by_step[step] for by_step in measured]) for step in measured[0]}

    spread = "; ".join(f"{name} " + ", ".join(f"{run.figures[name]:,.1f}" for run in runs) for name in DRIFT_FIGURES)
    notes = [note for run in runs for note in run.notes]
    if len(runs) > 1:
        notes.append(f"measured {len(runs)} times, before and after each server ({spread})")
    return Results(
        mean([run.figures for run in runs]),
        notes,
        mean_by_step([run.parts for run in runs]),
        mean([run.memory for run in runs]),
        mean_by_step([run.requests for run in runs]),
    )


def table(results: dict[str, Results], baselines: dict[str, Results]) -> str:
    """The figures as a Markdown table, a server a column, each with its ratio to its baseline's."""
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for figure in results[names[0]].figures:
        cells = []
        for name in names:
            value = results[name].figures[figure]
            baseline = baselines.get(name)
            ratio = f" ({value / baseline.figures[figure]:.2f}x)" if baseline else ""
            cells.append(f"{value:,.1f}{ratio}")
        lines.append(f"| {figure} | " + " | ".join(cells) + " |")
    notes = [f"- {name}: {note}" for name, result in results.items() for note in result.notes]
    sections = [*by_process(results), "", *targets(results, baselines), "", *redis_requests_by_command(results)]
    return "\n".join(lines + (["", *notes] if notes else []) + ["", *sections])


def targets(results: dict[str, Results], baselines: dict[str, Results]) -> list[str]:
    """A Markdown table of sioless' targets measured in this run: each figure's ratio to
    python-socketio's beside the target."""
    lines = ["| target | ratio to python-socketio | at most | met |", "| --- | ---: | ---: | --- |"]
    for name, figures in TARGETS.items():
        if name in results:
            for figure, target in figures.items():
                ratio = results[name].figures[figure] / baselines[name].figures[figure]
                met = "yes" if ratio <= target else "no"
                lines.append(f"| {name}: {figure} | {ratio:.2f}x | {target:.1f}x | {met} |")
    return lines if len(lines) > 2 else []


def redis_requests_by_command(results: dict[str, Results]) -> list[str]:
    """A line a server and step for the requests Redis answered, by command (a script run is one
    ``evalsha``)."""
    lines = [
        f"- {name}, {step}: " + ", ".join(f"{command} {calls:.2f}" for command, calls in sorted(by_command.items()))
        for name, result in results.items()
        for step, by_command in result.requests.items()
        if by_command
    ]
    return ["Requests to Redis, by command:", "", *lines] if lines else []


def by_process(results: dict[str, Results]) -> list[str]:
    """A line a server for the CPU µs of an echo (at a pace, saturated), then for the KiB of an
    idle connection, by process (Redis and PostgreSQL on their own)."""
    sections: list[tuple[str, Callable[[Results], dict[str, float]]]] = [
        (f"CPU µs per event of {step}", lambda result, step=step: result.parts[step])
        for step in next(iter(results.values())).parts
    ]
    sections.append(("KiB per idle connection (resident memory; Redis: its data)", lambda result: result.memory))
    lines = []
    for title, figures in sections:
        lines += [f"{title}, by process:", ""]
        for name, result in results.items():
            lines.append(f"- {name}: " + ", ".join(f"{part} {value:,.1f}" for part, value in figures(result).items()))
        lines.append("")
    return lines[:-1]


def machine() -> str:
    """The machine and the runtimes, in one line."""
    cpu = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line), ":?")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    runtimes = f"Python {platform.python_version()}, Node {node}"
    return f"{os.cpu_count()} cores ({cpu.split(':', 1)[1].strip()}), Linux {platform.release()}, {runtimes}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a fifth of the load: to try the benchmark out")
    choices = [*SERVERS, *COMPARISONS]
    parser.add_argument("--only", nargs="*", choices=choices, help="these servers (and the baseline) only")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers on the way out
    phases = QUICK_PHASES if args.quick else PHASES
    layer = redis.Redis(host="127.0.0.1", port=6379)
    servers = [name for name in choices if name in (args.only or SERVERS) and name != BASELINE]

    def measured(name: str) -> Results:
        print(f"{name} ...", flush=True)
        with {**SERVERS, **COMPARISONS}[name]() as topology:
            result = measure(topology, layer, phases)
        print(json.dumps(result.figures), *result.notes, sep="\n", flush=True)
        return result

    # the baseline before and after each server, whose ratios are to the mean of those two: the
    # machine's speed drifts (python-socketio's CPU an echo once moved by half within a run)
    baseline_runs = [measured(BASELINE)]
    results: dict[str, Results] = {}
    baselines: dict[str, Results] = {}
    for name in servers:
        results[name] = measured(name)
        baseline_runs.append(measured(BASELINE))
        baselines[name] = averaged(baseline_runs[-2:])
    results = {BASELINE: averaged(baseline_runs), **results}
    report = f"Machine: {machine()}. Load: {phases}.\n\n{table(results, baselines)}\n"
    print(report)
    if not args.quick and not args.only:
        RESULTS.write_text(f"# Benchmark results\n\nMeasured with `make bench`.\n\n{report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
