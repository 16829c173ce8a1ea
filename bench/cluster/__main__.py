"""The cluster check: sioless' production topology on ten hosts of this machine (network
namespaces), python-socketio clients on their own host echoing through HAProxy, and the faults of
a deployment across machines, each with its counted outcome. Prints one JSON line; its "ok" is
true when every client was served again after every fault, without a hand. Everything it made is
removed at the end, whatever happens.

``--server python-socketio`` runs the same clients and faults against what a python-socketio user
deploys on the same hosts instead: uvicorn on each application host, ``AsyncRedisManager`` through
the same Sentinels, HAProxy with sticky sessions (a cookie), which python-socketio's polling needs.

``--reconnect N`` ends with a mass reconnect: N lean WebSockets (``bench/js/load.mjs``) through
HAProxy, then app1's ASGI server killed (as a deploy restarts it): its clients reconnect as
socket.io-client does by default, by way of the other host; the seconds they were away (the
client's reconnection delay of 0.5-1.5 s included) and those their last attempt took.

Usage (as root): python -m bench.cluster [--clients N] [--delay-ms MS] [--server sioless|python-socketio]
    [--reconnect N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import LOAD_CLIENT, run_step, wait_until_ready
from tests.support.processes import ARTIFACTS, ROOT

from .network import Network, can_make_namespaces
from .topology import APP_HOSTS, SERVICE_HOSTS, Topology

#: The application hosts the check deploys on.
CHECKED_HOSTS = APP_HOSTS[:2]

#: Seconds within which every client must be served again after a fault.
HEAL_WITHIN = 45.0
#: Seconds within which clients notice a fault (their acks stop), if they ever do.
NOTICED_WITHIN = 5.0
#: Seconds the application host is cut from the network.
CUT_FOR = 10.0
#: Seconds PostgreSQL's host is away.
DATABASE_DOWN_FOR = 5.0
#: Seconds of the steady state whose echoes' round trips are reported, before the faults.
STEADY_FOR = 5.0


class Load:
    """The load client on its host, and the reports it prints a second."""

    def __init__(self, topology: Topology, clients: int, seconds: float) -> None:
        self.clients = clients
        command = [sys.executable, "-m", "bench.cluster.clients", topology.url, str(clients), str(seconds)]
        self.popen = subprocess.Popen(
            topology.network["client"].command(command),
            cwd=ROOT,
            env=topology.env,
            stdout=subprocess.PIPE,
            stderr=(ARTIFACTS / "cluster-load-client.log").open("w"),
            text=True,
        )
        self.reports: list[tuple[float, dict[str, Any]]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.reports.append((time.monotonic(), json.loads(line)))

    def latest(self) -> dict[str, Any]:
        return self.reports[-1][1] if self.reports else {}

    def all_served(self) -> bool:
        return self.latest().get("serving") == self.clients

    def round_trips(self, seconds: float) -> dict[str, dict[str, float]]:
        """By transport, p50 and p99 (ms) of the echoes acked over the next ``seconds``."""
        first = len(self.reports)
        time.sleep(seconds)
        reported = [report.get("round_trips_ms", {}) for _, report in self.reports[first:]]
        by_transport = {}
        for transport in ("websocket", "polling"):
            trips = sorted(ms for trips in reported for ms in trips.get(transport, []))
            if trips:
                p50, p99 = trips[len(trips) // 2], trips[int(len(trips) * 0.99)]
                by_transport[transport] = {"echoes": len(trips), "p50_ms": p50, "p99_ms": p99}
        return by_transport

    def wait(self, ready: Callable[[], bool], bound: float) -> float | None:
        """Seconds until ``ready()``; None past ``bound``."""
        started = time.monotonic()
        while time.monotonic() - started < bound:
            if ready():
                return round(time.monotonic() - started, 1)
            time.sleep(0.2)
        return None


def fault(load: Load, name: str, act: Callable[[], None], then: Callable[[], None] | None = None) -> dict[str, Any]:
    """Do a fault; how long from its start until every client was served again (0: no client
    noticed it within NOTICED_WITHIN), and what the clients counted."""
    before = load.latest()
    started = time.monotonic()
    act()
    noticed = load.wait(lambda: not load.all_served(), NOTICED_WITHIN)
    healed = None if load.wait(load.all_served, HEAL_WITHIN) is None else round(time.monotonic() - started, 1)
    if noticed is None:
        healed = 0.0
    if then is not None:
        then()
    after = load.latest()
    outcome = {
        "healed_after_s": healed,
        "disconnects": after.get("disconnects", 0) - before.get("disconnects", 0),
        "echoes_not_acked": after.get("failed", 0) - before.get("failed", 0),
    }
    print(f"{name}: {outcome}", file=sys.stderr)
    return outcome


def mass_reconnect(topology: Topology, connections: int) -> dict[str, Any]:
    """``connections`` WebSockets through the balancer; app1's ASGI server killed; what its
    clients counted until each was back (by way of app2), in their own time."""
    command = ["node", str(LOAD_CLIENT), "reconnect", topology.url, str(connections)]
    with subprocess.Popen(
        topology.network["client"].command(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as client:
        wait_until_ready(client, "reconnect")
        opened = run_step(client, "reconnect")
        wait_until_ready(client, "reconnect")
        server = next(name for name in ("app1-daphne", "app1-uvicorn") if name in topology.processes)
        topology.processes[server].popen.kill()
        reconnected = run_step(client, "reconnect")
        client.communicate("end\n", timeout=30)
    outcome = {
        "connections": opened["connected"],
        "lost": reconnected["lost"],
        "back": reconnected["back"],
        "connected_after": reconnected["connected"],
        "away_p50_s": round(reconnected.get("p50", 0) / 1000, 2),
        "away_p99_s": round(reconnected.get("p99", 0) / 1000, 2),
        "reconnect_p50_s": round(reconnected["connect"].get("p50", 0) / 1000, 2),
        "reconnect_p99_s": round(reconnected["connect"].get("p99", 0) / 1000, 2),
    }
    print(f"mass reconnect: {outcome}", file=sys.stderr)
    return outcome


def deploy_sioless(topology: Topology) -> None:
    """PostgreSQL, and on each application host daphne, the worker of a shard, a standby for
    every shard and a qcluster; HAProxy without stickiness."""
    topology.start_postgres()
    for shard, name in enumerate(CHECKED_HOSTS):
        topology.start_app(name, shard)
    for name in CHECKED_HOSTS:
        topology.start_standby(name)
    topology.start_balancer(CHECKED_HOSTS)


def sioless_back(topology: Topology, name: str) -> None:
    """An application host's processes started again after its loss (a standby serves its shard)."""
    topology.start_app(name, CHECKED_HOSTS.index(name), serves=False)
    topology.start_standby(name)


def deploy_python_socketio(topology: Topology) -> None:
    """uvicorn with python-socketio on each application host; HAProxy with sticky sessions."""
    for name in CHECKED_HOSTS:
        topology.start_python_socketio(name)
    topology.start_balancer(CHECKED_HOSTS, sticky=True)


#: Each server under test: how it is deployed, and how a lost application host comes back.
SERVERS: dict[str, tuple[Callable[[Topology], None], Callable[[Topology, str], None]]] = {
    "sioless": (deploy_sioless, sioless_back),
    "python-socketio": (deploy_python_socketio, Topology.start_python_socketio),
}


def check(clients: int, delay_ms: float, server: str = "sioless", reconnecting: int = 0) -> dict[str, Any]:
    network = Network([*SERVICE_HOSTS, *CHECKED_HOSTS], delay_ms)
    home = Path(tempfile.mkdtemp(prefix="sioless-cluster-"))
    home.chmod(0o755)
    topology = Topology(network, home)
    deploy, back = SERVERS[server]
    result: dict[str, Any] = {"ok": False, "server": server, "hosts": len(network.hosts), "clients": clients}
    try:
        network.create()
        result["link_delay_ms"] = None if network.no_delay else delay_ms
        if network.no_delay:
            result["no_delay_because"] = network.no_delay
        topology.start_redis()
        deploy(topology)
        load = Load(topology, clients, seconds=600)
        result["all_served_after_s"] = load.wait(load.all_served, 60)
        result["echo_round_trip"] = load.round_trips(STEADY_FOR)
        faults = result["faults"] = {}
        faults["application host lost (kill -9 of app1)"] = fault(
            load, "app host lost", network["app1"].kill_all, then=lambda: back(topology, "app1")
        )
        primary = topology.redis_primary()
        lost = next(name for name in ("redis1", "redis2") if network[name].address == primary)
        faults[f"Redis primary host lost (kill -9 of {lost})"] = fault(
            load, "redis primary lost", network[lost].kill_all
        )
        result["redis_primary_after"] = topology.redis_primary()

        def cut() -> None:
            network["app2"].cut()
            time.sleep(CUT_FOR)
            network["app2"].restore()

        faults[f"application host cut from the network for {CUT_FOR:.0f} s (app2)"] = fault(load, "app host cut", cut)

        def restart_database() -> None:
            network["db"].kill_all()
            time.sleep(DATABASE_DOWN_FOR)
            topology.run_postgres()

        if topology.postgres_data.exists():  # python-socketio's deployment has no database
            faults[f"PostgreSQL's host lost and back after {DATABASE_DOWN_FOR:.0f} s (kill -9 of db)"] = fault(
                load, "database host restarted", restart_database
            )
        result["totals"] = {name: count for name, count in load.latest().items() if name != "round_trips_ms"}
        result["ok"] = result["all_served_after_s"] is not None and all(
            outcome["healed_after_s"] is not None for outcome in faults.values()
        )
        load.popen.kill()
        if reconnecting:
            reconnect = result["mass_reconnect"] = mass_reconnect(topology, reconnecting)
            everyone_back = reconnect["back"] == reconnect["lost"] > 0
            result["ok"] &= everyone_back and reconnect["connected_after"] == reconnect["connections"] == reconnecting
    finally:
        topology.stop()
        shutil.rmtree(home, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=1.0)
    parser.add_argument("--server", choices=sorted(SERVERS), default="sioless")
    parser.add_argument("--reconnect", type=int, default=0, help="connections of the mass reconnect (0: none)")
    args = parser.parse_args()
    why_not = can_make_namespaces()
    if why_not:
        result: dict[str, Any] = {"ok": True, "skipped": why_not}
    else:
        result = check(args.clients, args.delay_ms, args.server, args.reconnect)
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
