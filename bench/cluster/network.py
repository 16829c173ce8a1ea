"""Hosts on one machine: a network namespace each, joined by veth pairs through a bridge.

The bridge lives in the machine's own namespace with the first address of the subnet, so the
machine reaches every host (and nothing else reaches them). Each host's link gets a delay with
``tc netem`` where the kernel has it; a link can be cut and restored. Everything is named with
one prefix, so :meth:`Network.remove` (and a run after a crash) leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

#: The names of everything this module makes start with it.
PREFIX = "sioc"
BRIDGE = f"{PREFIX}-br"
SUBNET = "10.213.0"


def sh(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=30)


@dataclass(frozen=True)
class Host:
    """A host: its namespace and its address on the bridge."""

    name: str
    address: str

    @property
    def namespace(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def link(self) -> str:
        """Its end of its veth pair, in the machine's namespace (at most 15 characters)."""
        return f"{PREFIX}-{self.name}"[:15]

    def command(self, command: Sequence[str]) -> list[str]:
        """``command`` as run on this host."""
        return ["ip", "netns", "exec", self.namespace, *command]

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh(*self.command(command), check=check)

    def pids(self) -> list[int]:
        """The processes running on this host."""
        return [int(pid) for pid in sh("ip", "netns", "pids", self.namespace, check=False).stdout.split()]

    def kill_all(self) -> None:
        """Lose the host: ``kill -9`` of everything on it."""
        for pid in self.pids():
            subprocess.run(["kill", f"-{signal.SIGKILL.value}", str(pid)], capture_output=True)

    def cut(self) -> None:
        """Cut its link: it reaches nothing, nothing reaches it, its processes run on."""
        sh("ip", "link", "set", self.link, "down")

    def restore(self) -> None:
        sh("ip", "link", "set", self.link, "up")


class Network:
    """The bridge and the hosts on it."""

    def __init__(self, names: Sequence[str], delay_ms: float = 1.0) -> None:
        self.hosts = {name: Host(name, f"{SUBNET}.{10 + n}") for n, name in enumerate(names)}
        self.delay_ms = delay_ms
        #: Why links have no delay, when the kernel has no netem.
        self.no_delay: str | None = None

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def create(self) -> None:
        remove_all()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{SUBNET}.1/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for host in self.hosts.values():
            inside = f"{host.link[:12]}-in"
            sh("ip", "netns", "add", host.namespace)
            sh("ip", "link", "add", host.link, "type", "veth", "peer", "name", inside)
            sh("ip", "link", "set", inside, "netns", host.namespace)
            sh("ip", "link", "set", host.link, "master", BRIDGE)
            sh("ip", "link", "set", host.link, "up")
            host.run("ip", "link", "set", "lo", "up")
            host.run("ip", "addr", "add", f"{host.address}/24", "dev", inside)
            host.run("ip", "link", "set", inside, "up")
            self._delay(host, inside)

    def _delay(self, host: Host, link: str) -> None:
        """``delay_ms`` each way on the host's link (a tenth of it as jitter), where netem exists."""
        if self.no_delay is not None or not self.delay_ms:
            return
        jitter = f"{self.delay_ms / 10}ms"
        delayed = host.run(
            "tc", "qdisc", "add", "dev", link, "root", "netem", "delay", f"{self.delay_ms}ms", jitter, check=False
        )
        if delayed.returncode != 0:
            self.no_delay = f"tc netem: {delayed.stderr.strip()} (the kernel has no sch_netem)"

    def remove(self) -> None:
        for host in self.hosts.values():
            host.kill_all()
        time.sleep(0.2)
        remove_all()


def remove_all() -> None:
    """Remove every namespace and link of this module's, with what runs in the namespaces."""
    for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
        namespace = line.split()[0] if line.split() else ""
        if namespace.startswith(f"{PREFIX}-"):
            for pid in sh("ip", "netns", "pids", namespace, check=False).stdout.split():
                subprocess.run(["kill", "-9", pid], capture_output=True)
            sh("ip", "netns", "del", namespace, check=False)
    for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(f"{PREFIX}-"):
            sh("ip", "link", "del", name, check=False)


def can_make_namespaces() -> str | None:
    """Why this machine cannot make the hosts (None: it can)."""
    if os.geteuid() != 0:
        return "ip netns needs root"
    if shutil.which("ip") is None or shutil.which("haproxy") is None or shutil.which("redis-server") is None:
        return "ip, haproxy or redis-server is missing"
    probe = sh("ip", "netns", "add", "sioc-probe", check=False)
    sh("ip", "netns", "del", "sioc-probe", check=False)
    return None if probe.returncode == 0 else f"ip netns add: {probe.stderr.strip()}"
