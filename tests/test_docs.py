"""The documentation says what the code does: its API reference names every public name of sioless,
with its sync and async forms; the figures it quotes from the defaults are the code's; the site
builds (``make docs``) in the end-to-end tier."""

from __future__ import annotations

import inspect
import re

from pytest_django.fixtures import Settings

import sioless
from sioless import RemoteSocket, Server, Socket
from sioless.recovery import kept_for
from tests.support.processes import ROOT


def api_reference() -> str:
    return (ROOT / "docs" / "reference.md").read_text()


def documentation() -> str:
    """The README and every page of the documentation site."""
    return "\n".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def public_methods(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_every_public_name_is_in_the_api_reference() -> None:
    reference = api_reference()
    missing = [name for name in sioless.__all__ if f"`{name}" not in reference]
    assert missing == []


def test_every_method_of_the_server_and_of_remote_sockets_is_documented_with_its_twin() -> None:
    reference = api_reference()
    registry_internals = {"namespace_for"}  # the worker's lookup, not an API
    for cls in (Server, RemoteSocket):
        for name in public_methods(cls) - public_methods(object) - registry_internals:
            if callable(getattr(cls, name)) and not inspect.isclass(getattr(cls, name)):
                assert f"{name}(" in reference or f"{name}`" in reference, f"{cls.__name__}.{name}"
                if name.startswith("a") and name.removeprefix("a") in public_methods(cls):
                    assert f"`{name}`/`{name.removeprefix('a')}" in reference, f"{cls.__name__}.{name} and its twin"


def test_the_socket_table_names_every_method_of_a_socket() -> None:
    handlers = (ROOT / "docs" / "handlers.md").read_text()
    table = handlers[handlers.index("## The socket a handler receives") : handlers.index("## From anywhere in Django")]
    internals = {
        "acknowledge",
        "abandon_acks",
        "acall_encoded",
        "connected",
        "persisted",
        "saving",
        "sent_before_connect",
    }
    for name in public_methods(Socket) - public_methods(object) - internals:
        if callable(getattr(Socket, name)) and name.startswith("a"):
            assert name in table, f"Socket.{name}"


def test_the_packet_log_keeps_events_as_long_as_the_readme_says(settings: Settings) -> None:
    settings.SIOLESS = {}  # the defaults
    said = re.search(r"; (\d+) s with\s+the defaults", documentation())
    assert said is not None
    assert float(said.group(1)) == kept_for()


def test_the_log_lines_the_readme_quotes_are_the_code_s() -> None:
    """Each line the process table quotes as sioless' has the words of a format string of sioless'
    logs, in order (a name or a number in the quote stands for a placeholder)."""
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `sioless_worker` |"))
    quotes = re.findall(r"`([^`]*\b(?:shards?|sessions)\b[^`]*)`", row)
    assert len(quotes) >= 6, row
    formats = [
        words(literal)
        for path in (ROOT / "sioless").rglob("*.py")
        for literal in re.findall(r'logger\.\w+\(\s*(?:#[^\n]*\n\s*)?"([^"]*)"', path.read_text())
    ]
    for quote in quotes:
        assert any(in_order(words(quote), fmt) for fmt in formats), quote


def words(line: str) -> list[str]:
    """The words of a log line, without what varies (names, numbers, placeholders)."""
    kept = (token for token in line.split() if not re.search(r"[\d<>\[\]%]|\.\.\.", token))
    return [word for token in kept if (word := token.strip(",.:;"))]


def in_order(wanted: list[str], found: list[str]) -> bool:
    remaining = iter(found)
    return all(word in remaining for word in wanted)


def test_every_make_command_the_documentation_gives_is_a_target_of_the_makefile() -> None:
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    given = set(re.findall(r"`make ([a-z][a-z0-9-]*)", documentation()))
    assert {"demo", "test"} <= given  # the two commands, at least
    assert given - targets == set()
