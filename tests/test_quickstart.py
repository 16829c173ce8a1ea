"""The README's Quickstart, pasted block by block into a new directory exactly as written, runs:
a new virtual environment with what its install lines install (nothing of this project's own
environment), ``startproject``, ``check`` without a warning, ``migrate``, ``runserver``, and its
two clients (socket.io-client under Node, python-socketio) get their acknowledgements."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo_project.production import free_port
from tests.support.processes import Process
from tests.support.readme import UserShell, blocks

pytestmark = pytest.mark.e2e

#: The Quickstart's server: run on a free port, stopped at the end.
RUNSERVER = "python manage.py runserver"
#: The address the Quickstart's clients connect to.
ADDRESS = "127.0.0.1:8000"
#: What the Quickstart's clients print: the acknowledgements of the messages they send.
PRINTED = ["stored as message 1", "stored as message 2"]


def quickstart_project(shell: UserShell, port: int | None = None) -> list[Process]:
    """Do the Quickstart's blocks in ``shell``: its project, in a new virtual environment, with
    runserver on ``port`` (the server returned) or not at all; its clients written, not run."""
    servers: list[Process] = []

    def runserver(command: str) -> None:
        if port is not None:
            assert "no issues" in shell.run("python", "manage.py", "check").stdout
            address = f"127.0.0.1:{port}"
            command = ["python", "manage.py", "runserver", "--noreload", address]
            servers.append(Process("quickstart-runserver", command, shell.env, cwd=shell.cwd))
            servers[-1].wait_for_port(port)

    quickstart = blocks("quickstart")
    assert [block.action for block in quickstart].count("shell") == 2
    for block in quickstart:
        if block.action in ("node", "python"):
            (shell.cwd / block.target).write_text(block.code)
        else:
            shell.perform(block, {RUNSERVER: runserver})
    return servers


def run_clients(shell: UserShell, address: str) -> list[str]:
    """Run the Quickstart's clients against ``address``; what they print."""
    printed = []
    for block in blocks("quickstart"):
        if block.action in ("node", "python"):
            (shell.cwd / block.target).write_text(block.code.replace(ADDRESS, address))
            printed.append(shell.run(block.action, block.target).stdout.strip())
    return printed


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    shell = UserShell(tmp_path)
    port = free_port()
    servers = quickstart_project(shell, port)
    try:
        assert run_clients(shell, f"127.0.0.1:{port}") == PRINTED
        emitted = shell.run("python", "manage.py", "shell", "-c", "from sioless import sio; sio.emit('lost')")
        assert "reaches no client" in emitted.stderr  # the shell's in-memory layer is not the server's
    finally:
        for server in servers:
            server.stop()
