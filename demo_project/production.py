"""Run the demo in the production topology, every process on this machine: a qcluster (the
heartbeat), one ``sioless_worker`` a shard, two daphne processes, and a round-robin load balancer
in front of them at http://127.0.0.1:<port>/. Needs PostgreSQL and Redis on 127.0.0.1 (the
database is created if missing). Ctrl-C stops everything.

Usage: python -m demo_project.production [--port 8000] [--database sioless_demo] [--prefix sioless-demo]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
#: Seconds a stopping qcluster gets before SIGKILL (its heartbeat run ends within a second or two).
QCLUSTER_STOP_TIMEOUT = 30.0
#: Connections the kernel queues for a daphne process until it accepts them. daphne's own (Twisted's
#: default) is 50: in a storm of connects the kernel drops the SYNs beyond it, and those clients
#: wait a second for TCP to send theirs again (uvicorn queues 2,048, Node 511).
BACKLOG = 1024


def daphne_command(
    port: int, *options: str, application: str = "demo_project.asgi:application", host: str = "127.0.0.1"
) -> list[str]:
    """daphne serving ``application`` on ``host:port`` with a listen backlog of ``BACKLOG`` (and
    more daphne ``options``)."""
    endpoint = f"tcp:port={port}:interface={host}:backlog={BACKLOG}"
    return [sys.executable, "-m", "daphne", "-e", endpoint, "--websocket_timeout", "-1", *options, application]


def create_database(name: str) -> None:
    """Create database ``name`` unless it exists."""
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts connections on ``port``."""
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    """Return once ``port`` accepts connections; fail if ``process`` exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port}")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--database", default="sioless_demo")
    parser.add_argument("--prefix", default="sioless-demo", help="channel-layer and broker key prefix")
    args = parser.parse_args()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo_project.settings_production",
        "SIOLESS_DEMO_DATABASE": args.database,
        "SIOLESS_DEMO_PREFIX": args.prefix,
        # a key of this run's own: sids and sealed auth stay unforgeable (a deployment sets its own)
        "SIOLESS_DEMO_SECRET_KEY": os.environ.get("SIOLESS_DEMO_SECRET_KEY") or secrets.token_urlsafe(50),
        "PYTHONUNBUFFERED": "1",
    }
    create_database(args.database)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    daphne_ports = [free_port(), free_port()]
    qcluster = subprocess.Popen([*manage, "qcluster"], cwd=ROOT, env=env, start_new_session=True)
    commands = [
        [*manage, "sioless_worker", "--shard", "0"],
        [*manage, "sioless_worker", "--shard", "1"],
        *(daphne_command(port) for port in daphne_ports),
    ]
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True) for command in commands]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for port, process in zip(daphne_ports, processes[-2:], strict=True):
            wait_for_port(port, process)
        balancer = [sys.executable, "-m", "demo_project.balancer", str(args.port), *map(str, daphne_ports)]
        processes.append(subprocess.Popen(balancer, cwd=ROOT, env=env, start_new_session=True))
        print(f"sioless demo, production topology: http://127.0.0.1:{args.port}/", flush=True)
        while all(process.poll() is None for process in [qcluster, *processes]):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # SIGTERM to the qcluster's main process only: to its whole group, it hangs django-q2.
        qcluster.terminate()
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait()
        try:
            qcluster.wait(QCLUSTER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # a broker that keeps no cluster status: nothing is lost
            os.killpg(qcluster.pid, signal.SIGKILL)
            qcluster.wait()


if __name__ == "__main__":
    sys.exit(main())
