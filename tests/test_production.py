"""The README's production recipe, followed for the Quickstart's project on this machine: the
database and role made as written, the settings and environment file pasted, the systemd units
checked by ``systemd-analyze verify`` and their ``ExecStart`` run as systemd would (with their
environment file, working directory and stop signal), HAProxy's configuration checked by
``haproxy -c`` (no warning) and run. Both Quickstart clients get their acknowledgements through
HAProxy, a connected client goes on through a restart of both workers, and the qcluster stops within
its unit's stop timeout.

What the test changes, as a machine of its own must: the ports (daphne's, HAProxy's) are free
ones, ``/srv/app`` is the test's directory, ``REDIS_PREFIX`` is the test's own; it drops the
database and role it made.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from configparser import ConfigParser
from pathlib import Path

import pytest
import redis
import socketio

from demo_project.production import free_port
from tests.support.processes import Process
from tests.support.readme import Block, UserShell, blocks, environment_file
from tests.test_quickstart import PRINTED, quickstart_project, run_clients

pytestmark = pytest.mark.e2e

#: The directory the recipe's units name for the Quickstart's.
SRV = "/srv/app"
#: systemd's PATH for services (not the shell's: the units name their executables).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: How each unit shows it serves.
READY = {"daphne": "Listening on TCP address", "worker": "serving shard", "qcluster": "running."}


def postgres(sql: str) -> None:
    subprocess.run(["sudo", "-u", "postgres", "psql", "-c", sql], check=True, capture_output=True, timeout=60)


def drop_database() -> None:
    postgres("DROP DATABASE IF EXISTS mysite WITH (FORCE)")
    postgres("DROP ROLE IF EXISTS mysite")


class Deployment:
    """What the recipe's systemctl lines start, run as systemd would run the units."""

    def __init__(self, shell: UserShell, ports: dict[str, int], prefix: str) -> None:
        self.shell = shell
        self.ports = ports
        self.prefix = prefix
        self.running: dict[str, Process] = {}
        #: The [Service] section of each unit started, its specifiers replaced.
        self.services: dict[str, dict[str, str]] = {}

    def localized(self, block: Block) -> Block:
        """A block with this machine's ports, directory and Redis prefix."""
        code = block.code.replace(SRV, str(self.shell.cwd.parent))
        for written, port in self.ports.items():
            code = code.replace(written, f":{port}" if written.startswith(":") else str(port))
        code = re.sub(r"REDIS_PREFIX=.*", f"REDIS_PREFIX={self.prefix}", code)
        return Block(block.action, block.target, code)

    def verify_units(self, command: str) -> None:
        """In place of copying the units to systemd: ``systemd-analyze verify`` each."""
        for unit in sorted(self.shell.cwd.glob("sioless-*.service")):
            instance = unit.with_name(unit.name.replace("@.", "@0."))  # a template is verified as an instance
            if instance != unit:
                shutil.copy(unit, instance)
            done = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True, text=True)
            assert done.returncode == 0 and not done.stderr.strip(), f"{unit.name}: {done.stderr}"
            if instance != unit:
                instance.unlink()

    def start_units(self, command: str) -> None:
        """``systemctl enable --now`` of units: each one's ExecStart, once it serves."""
        for name in shlex.split(command)[4:]:
            self.start(name)

    def start(self, name: str) -> None:
        template, _, instance = name.partition("@")
        unit = ConfigParser(interpolation=None)
        unit.read(self.shell.cwd / (f"{template}@.service" if instance else f"{name}.service"))
        service = {key: value.replace("%i", instance) for key, value in unit["Service"].items()}
        env = {"PATH": SYSTEMD_PATH, **environment_file(Path(service["environmentfile"]))}
        process = Process(
            f"recipe-{name}",
            shlex.split(service["execstart"]),
            env,
            signal.Signals[service.get("killsignal", "SIGTERM")],
            Path(service["workingdirectory"]),
            stop_main_only=service.get("killmode") == "mixed",
        )
        process.wait_for_log(next(text for role, text in READY.items() if role in name))
        self.running[name] = process
        self.services[name] = service

    def stop_unit(self, name: str) -> bool:
        """``systemctl stop``: the unit's kill signal, SIGKILL after its ``TimeoutStopSec``; whether it
        stopped before that."""
        return self.running.pop(name).stop(float(self.services[name]["timeoutstopsec"]))

    def haproxy(self, command: str) -> None:
        """In place of installing HAProxy's configuration: ``haproxy -c`` (no warning), then HAProxy."""
        config = str(self.shell.cwd / "haproxy.cfg")
        checked = subprocess.run(["haproxy", "-c", "-f", config], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert not re.search(r"WARNING|ALERT", checked.stdout + checked.stderr), checked.stdout + checked.stderr
        self.running["haproxy"] = Process("recipe-haproxy", ["haproxy", "-db", "-f", config], {"PATH": SYSTEMD_PATH})
        self.running["haproxy"].wait_for_port(self.ports[":80"])

    def stop(self) -> None:
        for process in reversed(self.running.values()):
            process.stop()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    prefix = f"siotest-recipe-{uuid.uuid4().hex[:8]}"
    ports = {"8001": free_port(), "8002": free_port(), ":80": free_port()}
    deployed = Deployment(UserShell(tmp_path), ports, prefix)
    drop_database()
    try:
        yield deployed
    finally:
        deployed.stop()
        drop_database()
        client = redis.Redis(host="127.0.0.1", port=6379)
        for pattern in (f"{prefix}*", f"django_q:{prefix}*"):  # the channel layer's keys, django-q2's
            for key in client.scan_iter(pattern):
                client.delete(key)


def test_the_production_recipe_serves_the_quickstart_through_haproxy(deployment: Deployment) -> None:
    shell = deployment.shell
    quickstart_project(shell)
    hooks = {
        "sudo apt-get install haproxy": lambda command: None,  # installed by make test
        "sudo cp sioless-": deployment.verify_units,
        "sudo systemctl enable --now": deployment.start_units,
        "sudo cp haproxy.cfg": deployment.haproxy,
    }
    for block in blocks("production"):
        shell.perform(deployment.localized(block), hooks)
    assert set(deployment.running) == {
        "sioless-qcluster",
        "sioless-worker@0",
        "sioless-worker@1",
        f"sioless-daphne@{deployment.ports['8001']}",
        f"sioless-daphne@{deployment.ports['8002']}",
        "haproxy",
    }
    # a storm of connects waits in the kernel's queue, not a second for TCP to retry (daphne's own: 50)
    assert [listen_backlog(deployment.ports[port]) for port in ("8001", "8002")] == [1024, 1024]
    balancer = f"127.0.0.1:{deployment.ports[':80']}"
    assert run_clients(shell, balancer) == PRINTED
    asyncio.run(stays_connected_through_worker_restarts(deployment, f"http://{balancer}"))
    assert deployment.stop_unit("sioless-qcluster"), "the qcluster did not stop within its TimeoutStopSec"
    missing = {**shell.env, "DATABASE_PASSWORD": ""}
    del missing["DATABASE_PASSWORD"]
    done = subprocess.run(["python", "manage.py", "check"], cwd=shell.cwd, env=missing, capture_output=True, text=True)
    assert done.returncode != 0 and "the environment variable DATABASE_PASSWORD" in done.stderr


def listen_backlog(port: int) -> int:
    """How many connections the kernel queues for the socket listening on ``port`` (``ss``: the
    listening socket's Send-Q)."""
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return int(listening.stdout.split()[2])


async def stays_connected_through_worker_restarts(deployment: Deployment, url: str) -> None:
    """A client connected through HAProxy goes on, acknowledged, while both workers restart."""
    client = socketio.AsyncClient(reconnection=False)
    disconnects: list[object] = []
    client.on("disconnect", lambda *reason: disconnects.append(reason))
    await client.connect(url, auth={"name": "linus"}, transports=["websocket"], wait_timeout=10)
    try:
        assert await client.call("say", ("lobby", "before"), timeout=10) == "stored as message 3"
        for worker in ("sioless-worker@0", "sioless-worker@1"):
            assert deployment.stop_unit(worker)
            deployment.start(worker)
        assert await client.call("say", ("lobby", "after"), timeout=10) == "stored as message 4"
        assert disconnects == []
    finally:
        await client.disconnect()
