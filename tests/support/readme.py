"""The README's blocks, done as a new user pastes them: shell lines run in a shell of the user's
own (a new virtual environment, nothing of this project's), files written or appended.

A block is marked by the comment before it: ``<!-- quickstart: write chat/models.py -->``, the
walkthrough's name, then what to do with the block and its target.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ROOT

#: A marked block: the walkthrough, what to do with the block, its target, then the fenced code.
BLOCK = re.compile(
    r"<!-- (?P<walkthrough>\w+): (?P<action>\w+) ?(?P<target>\S*) -->\n```\w*\n(?P<code>.*?)```", re.DOTALL
)
#: Shell lines the shell does itself: making and activating the virtual environment (its ``bin``
#: first on the PATH), and reading an environment file into the environment.
VENV = "python3 -m venv .venv && . .venv/bin/activate"
SOURCE = re.compile(r"set -a && \. \./(?P<file>\S+) && set \+a")
#: Where the README's install lines have the user's checkout.
CHECKOUT = "path/to/sioless"
#: A command may install from the package registries: minutes at most.
COMMAND_TIMEOUT = 600


@dataclass(frozen=True)
class Block:
    action: str
    target: str
    code: str


def blocks(walkthrough: str) -> list[Block]:
    """The blocks of ``walkthrough`` in the README, then in the pages of ``docs/``, in order."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [
        Block(found["action"], found["target"], found["code"])
        for page in pages
        for found in BLOCK.finditer(page.read_text())
        if found["walkthrough"] == walkthrough
    ]


class UserShell:
    """A new user's shell in ``home``: the environment without this project's virtual environment,
    nor what pytest and the other tests set for their own projects."""

    def __init__(self, home: Path) -> None:
        self.cwd = home
        venv = str(Path(sys.prefix) / "bin")
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SIOLESS_", "DJANGO_", "VIRTUAL_ENV"))
        }
        self.env["PATH"] = os.pathsep.join(entry for entry in self.env["PATH"].split(os.pathsep) if entry != venv)

    def run(self, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command; it must succeed, with no Django system check or pip extra warning."""
        done = subprocess.run(
            command, cwd=self.cwd, env=env or self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        assert "System check identified" not in done.stderr, f"{command}: {done.stderr}"
        assert "does not provide the extra" not in done.stderr, f"{command}: {done.stderr}"
        return done

    def perform(self, block: Block, line_hooks: dict[str, Callable[[str], None]] | None = None) -> None:
        """Do a block: a shell block line by line (a line starting with a key of ``line_hooks`` goes
        to its hook instead), a file written or appended."""
        if block.action == "shell":
            for line in block.code.splitlines():
                command = line.partition("  #")[0].strip().replace(CHECKOUT, str(ROOT))
                hook = next((hook for start, hook in (line_hooks or {}).items() if command.startswith(start)), None)
                if hook is not None:
                    hook(command)
                elif command:
                    self.shell_line(command)
        elif block.action in ("write", "append"):
            with (self.cwd / block.target).open("a" if block.action == "append" else "w") as file:
                file.write(("\n" if block.action == "append" else "") + block.code)
        else:
            raise AssertionError(f"no way to do a {block.action} block")

    def shell_line(self, command: str) -> None:
        if command == VENV:
            self.run("python3", "-m", "venv", ".venv")
            venv = self.cwd / ".venv"
            self.env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{self.env['PATH']}")
        elif command.startswith("cd "):
            self.cwd = self.cwd / command.removeprefix("cd ")
        elif (sourced := SOURCE.fullmatch(command)) is not None:
            self.env.update(environment_file(self.cwd / sourced["file"]))
        else:
            self.run(*shlex.split(command))


def environment_file(path: Path) -> dict[str, str]:
    """The variables of a systemd ``EnvironmentFile`` (``NAME=value`` lines)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
