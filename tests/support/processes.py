"""Real server processes for end-to-end tests: started, awaited, stopped, bounded in time."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from demo_project.production import daphne_command, free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
NODE_SCENARIOS = ROOT / "tests" / "js" / "scenarios.mjs"
RECOVERING_CLIENT = ROOT / "tests" / "js" / "recovering_client.mjs"
REFERENCE_SERVER = ROOT / "tests" / "js" / "reference_server.mjs"
DEMO_BROWSER = ROOT / "tests" / "js" / "demo_browser.mjs"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class Process:
    """A child process whose output goes to tests/artifacts/<name>.log."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: dict[str, str],
        stop_signal: int = signal.SIGTERM,
        cwd: Path = ROOT,
        *,
        stop_main_only: bool = False,
    ) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.stop_signal = stop_signal
        #: Whether the stop signal goes to the main process only (systemd's ``KillMode=mixed``).
        self.stop_main_only = stop_main_only
        self.log_path = ARTIFACTS / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_port(self, port: int, timeout: float = START_TIMEOUT) -> None:
        """Return once ``port`` accepts connections; fail if the process dies or time runs out."""
        self._wait(lambda: port_open(port), f"port {port}", timeout)

    def wait_for_log(self, text: str, timeout: float = START_TIMEOUT) -> None:
        """Return once the process has printed ``text``."""
        self._wait(lambda: text in self.log(), repr(text), timeout)

    def _wait(self, ready: Any, what: str, timeout: float) -> None:
        """Wait for ``ready()``; a process that never gets ready is stopped before the error."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.popen.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name}: no {what} within {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and wait for the exit."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Its stop signal (SIGTERM), then SIGKILL if it lingers past ``timeout`` seconds; whether it
        exited before the SIGKILL."""
        exited = True
        if self.popen.poll() is None:
            (os.kill if self.stop_main_only else os.killpg)(self.popen.pid, self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                exited = False
                self.kill()
        self._log.close()
        return exited


def django_env(settings: str, **extra: str) -> dict[str, str]:
    """The environment of a Django child process of this test run."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "PYTHONUNBUFFERED": "1",
        "SIOLESS_TEST_LOG_LEVEL": os.environ.get("SIOLESS_TEST_LOG_LEVEL", "INFO"),
        **extra,
    }


def daphne(name: str, env: dict[str, str]) -> tuple[Process, str]:
    """A daphne process serving the project; returns it with its base URL."""
    port = free_port()
    process = Process(name, daphne_command(port), env)
    process.wait_for_port(port)
    return process, f"http://127.0.0.1:{port}"


def runserver(name: str, env: dict[str, str], port: int | None = None) -> tuple[Process, str]:
    """``manage.py migrate``, then ``manage.py runserver`` (development mode, on ``port`` or a free
    one); returns it with its URL."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=60)
    port = port or free_port()
    process = Process(name, [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], env)
    process.wait_for_port(port)
    return process, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def development_server(name: str, directory: Path, **settings: str) -> Iterator[str]:
    """``manage.py runserver`` with an SQLite database in ``directory`` and ``settings``
    (``SIOLESS_TEST_*`` environment variables); its URL."""
    process, url = runserver(
        name, django_env("tests.settings_dev", SIOLESS_TEST_SQLITE=str(directory / "db.sqlite3"), **settings)
    )
    try:
        yield url
    finally:
        process.stop()


def worker(name: str, env: dict[str, str], *shards: int, standby: bool = False) -> Process:
    """A ``sioless_worker`` process for ``shards``, once it serves them (a standby: once it runs)."""
    args = [arg for shard in shards for arg in ("--shard", str(shard))]
    process = Process(name, [sys.executable, "manage.py", "sioless_worker", *args], env)
    process.wait_for_log("for shards" if standby else f"serving shard {shards[-1]}")
    return process


def qcluster(name: str, env: dict[str, str]) -> Process:
    """A django-q2 cluster, once it runs the sioless heartbeat (a worker process that starts kicks it).
    Stopped with SIGKILL: after SIGTERM to its process group, django-q2's main process hangs."""
    process = Process(name, [sys.executable, "manage.py", "qcluster"], env, stop_signal=signal.SIGKILL)
    process.wait_for_log("runs the heartbeat")
    return process


def round_robin_proxy(name: str, *backends: str, module: str = "demo_project.balancer") -> tuple[Process, str]:
    """demo_project.balancer: each HTTP request and WebSocket to the next of ``backends`` (skipping
    dead ones); its URL. ``module="tests.support.cutting_balancer"``: one that resets every connection it
    carries on SIGUSR1."""
    port = free_port()
    ports = [url.rsplit(":", 1)[1] for url in backends]
    process = Process(name, [sys.executable, "-m", module, str(port), *ports], os.environ.copy())
    process.wait_for_port(port)
    return process, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def reference_server(
    name: str, ping_interval: float, ping_timeout: float, connect_timeout: float, upgrade_timeout: float, *options: str
) -> Iterator[str]:
    """Node's socket.io server, tests/js/reference_server.mjs, with these timeouts (seconds) and
    ``options`` (``"recovery"``: connection state recovery on); its URL."""
    port = free_port()
    timeouts = [str(int(seconds * 1000)) for seconds in (ping_interval, ping_timeout, connect_timeout, upgrade_timeout)]
    command = ["node", str(REFERENCE_SERVER), str(port), *timeouts, *options]
    process = Process(name, command, os.environ.copy())
    try:
        process.wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


class NodeClient:
    """tests/js/recovering_client.mjs: one stock socket.io-client, driven command by command, whose
    reports (connect, disconnect, events, acks) are read as they come."""

    def __init__(self, url: str, transport: str = "websocket", auth: dict[str, Any] | None = None) -> None:
        command = ["node", str(RECOVERING_CLIENT), url, transport, json.dumps(auth or {})]
        self.popen = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.reports: queue.Queue[dict[str, Any]] = queue.Queue()
        self.unread: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.reports.put(json.loads(line))

    def send(self, **command: Any) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(command) + "\n")
        self.popen.stdin.flush()

    def next(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first report of ``kind`` not read yet (the others are kept for :meth:`taken`)."""
        for report in self.unread:
            if report["type"] == kind:
                self.unread.remove(report)
                return report
        deadline = time.monotonic() + timeout
        while True:
            try:
                report = self.reports.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {kind} from the Node client within {timeout} s: {self.unread}") from None
            if report["type"] == kind:
                return report
            self.unread.append(report)

    def taken(self, kind: str) -> list[dict[str, Any]]:
        """Every report of ``kind`` come so far and not read, now read."""
        while not self.reports.empty():
            self.unread.append(self.reports.get())
        found = [report for report in self.unread if report["type"] == kind]
        self.unread = [report for report in self.unread if report["type"] != kind]
        return found

    def ask(self, event: str, *args: Any) -> list[Any]:
        """Emit ``event`` and return its ack's arguments."""
        self.send(op="emit", event=event, args=list(args))
        return list(self.next("ack")["args"])

    def close(self) -> None:
        if self.popen.poll() is None:
            self.send(op="close")
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def run_node(
    scenario: str, *urls: str, timeout: float = 60.0, transports: str = "websocket", parser: str = "default"
) -> Any:
    """Run a scenario of tests/js/scenarios.mjs with clients on ``transports`` ("websocket",
    "default" options, or "polling" only) speaking ``parser`` ("default" or "msgpack"); return
    the JSON it printed last."""
    env = {**os.environ, "SIOLESS_TRANSPORTS": transports, "SIOLESS_PARSER": parser}
    return run_node_script(NODE_SCENARIOS, scenario, *urls, timeout=timeout, env=env)


def run_node_script(script: Path, *args: str, timeout: float, env: dict[str, str] | None = None) -> Any:
    """Run a Node script of tests/js; return the JSON it printed last."""
    command = ["node", str(script), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{done.stderr}\n{done.stdout}")
    return json.loads(done.stdout.strip().splitlines()[-1])
