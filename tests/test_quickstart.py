"""The README's Quickstart, pasted block by block into a new directory exactly as written, runs:
a new virtual environment with what its install lines install (nothing of this project's own
environment), ``startproject``, ``check`` without a warning, ``migrate``, ``runserver``, and its
two clients (socket.io-client under Node, python-socketio) get their acknowledgements."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from demo_project.production import free_port
from tests.support.processes import ROOT, Process

pytestmark = pytest.mark.e2e

#: A block of the Quickstart: the comment saying what to do with it, then the fenced code.
BLOCK = re.compile(r"<!-- quickstart: (?P<action>\w+) ?(?P<target>\S*) -->\n```\w+\n(?P<code>.*?)```", re.DOTALL)
#: The lines of the shell blocks the test runs otherwise: the virtual environment (made, then its
#: ``bin`` first on the PATH, as activating it does), and runserver (on a free port, stopped at the end).
VENV = "python3 -m venv .venv && . .venv/bin/activate"
RUNSERVER = "python manage.py runserver"
#: Where the Quickstart's install line has the user's checkout.
CHECKOUT = "path/to/sioless"
#: Installs from the package registries: minutes at most.
INSTALL_TIMEOUT = 600


def quickstart_blocks() -> list[re.Match[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quickstart") :]
    section = section[: section.index("\n## ", 1)]
    return list(BLOCK.finditer(section))


def a_new_users_environment() -> dict[str, str]:
    """This environment without this project's virtual environment, nor what pytest and the other
    tests set for their own projects."""
    venv = str(Path(sys.prefix) / "bin")
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("SIOLESS_", "DJANGO_", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join(entry for entry in env["PATH"].split(os.pathsep) if entry != venv)
    return env


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    env = a_new_users_environment()
    port = free_port()
    cwd = tmp_path
    server: Process | None = None
    printed: list[str] = []

    def run(*command: str) -> str:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        assert "System check identified" not in done.stderr, f"{command}: {done.stderr}"
        assert "does not provide the extra" not in done.stderr, f"{command}: {done.stderr}"
        return done.stdout

    blocks = quickstart_blocks()
    assert [block["action"] for block in blocks].count("shell") == 2
    try:
        for block in blocks:
            action, target, code = block["action"], block["target"], block["code"]
            code = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            if action == "shell":
                for line in code.splitlines():
                    command = line.partition("#")[0].strip().replace(CHECKOUT, str(ROOT))
                    if command == VENV:
                        run("python3", "-m", "venv", ".venv")
                        venv = cwd / ".venv"
                        env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
                    elif command == RUNSERVER:
                        assert "no issues" in run("python", "manage.py", "check")
                        server = Process(
                            "quickstart-runserver",
                            ["python", "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                            env,
                            cwd=cwd,
                        )
                        server.wait_for_port(port)
                    elif command.startswith("cd "):
                        cwd = cwd / command.removeprefix("cd ")
                    else:
                        run(*shlex.split(command))
            elif action in ("write", "append"):
                with (cwd / target).open("a" if action == "append" else "w") as file:
                    file.write(("\n" if action == "append" else "") + code)
            else:  # a client, run with node or python next to the project
                (cwd / target).write_text(code)
                printed.append(run(action, target).strip())
    finally:
        if server is not None:
            server.stop()
    assert printed == ["stored as message 1", "stored as message 2"]
