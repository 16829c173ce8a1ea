"""The demo as `make demo` and `make demo-production` run it, used by two people (and a third on a
phone-sized screen) in headless Chromium (Debian's package)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.clients import sio_client
from tests.support.database import admin_sql
from tests.support.processes import (
    ARTIFACTS,
    DEMO_BROWSER,
    ROOT,
    Process,
    django_env,
    free_port,
    run_node_script,
    runserver,
)

pytestmark = pytest.mark.e2e

ADMIN_UI_BROWSER = ROOT / "tests" / "js" / "admin_ui_browser.mjs"
STAFF_PASSWORD = "a staff user's password"


@pytest.fixture
def development_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``make demo``: runserver of demo_project, on a database of its own; its URL."""
    database = tmp_path_factory.mktemp("demo") / "db.sqlite3"
    process, url = runserver("demo-runserver", django_env("tests.settings_demo", SIOLESS_TEST_SQLITE=str(database)))
    try:
        yield url
    finally:
        process.stop()


@pytest.fixture
def production_demo() -> Iterator[str]:
    """``make demo-production``, on a database and channel-layer keys of its own; its URL."""
    with production_demo_starter() as (start, url, _):
        process = start()
        try:
            yield url
        finally:
            process.stop(timeout=40)


@pytest.fixture
def staffed_production_demo() -> Iterator[tuple[str, str, str]]:
    """:func:`production_demo` with a staff user of Django's admin: its URL, username and password."""
    with production_demo_starter() as (start, url, database):
        process = start()
        try:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "demo_project.settings_production",
                "SIOLESS_DEMO_DATABASE": database,
                "SIOLESS_DEMO_SECRET_KEY": "the staff user's creation only",
                "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD,
            }
            create = [
                sys.executable,
                "manage.py",
                "createsuperuser",
                "--noinput",
                "--username",
                "ops",
                "--email",
                "ops@example.com",
            ]
            subprocess.run(create, cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
            yield url, "ops", STAFF_PASSWORD
        finally:
            process.stop(timeout=40)


@contextlib.contextmanager
def production_demo_starter() -> Iterator[tuple[Callable[[], Process], str, str]]:
    """What starts ``make demo-production`` on a port, database and channel-layer keys of its own
    (again and again: a restart), and its URL; the database is dropped afterwards."""
    run = uuid.uuid4().hex[:8]
    database, port = f"sioless_demo_test_{run}", free_port()
    command = [sys.executable, "-m", "demo_project.production", "--port", str(port), "--database", database]

    def start() -> Process:
        process = Process("demo-production", [*command, "--prefix", f"siotest-demo-{run}"], dict(os.environ))
        process.wait_for_log("production topology: http")
        return process

    try:
        yield start, f"http://127.0.0.1:{port}", database
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.mark.parametrize("topology", ["development_demo", "production_demo"])
def test_two_browsers_chat_and_draw_together(topology: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(topology)
    screenshots = ARTIFACTS / topology
    screenshots.mkdir(parents=True, exist_ok=True)
    seen = run_node_script(DEMO_BROWSER, url, str(screenshots), timeout=120)
    assert seen["presence"] == "In lobby: alice, bob"
    assert seen["typing"] == "alice is typing…"
    assert seen["received"][-1] == "alicehello from alice"  # author, then text
    assert seen["paintedBefore"] == 0 < seen["paintedAfter"]
    assert seen["status"]["transport"] == "websocket"
    assert seen["status"]["state"] == "connected"
    assert seen["status"]["latency"].endswith(" ms")
    assert seen["presenceAfterLeaving"] == "In lobby: bob"
    assert seen["phoneOverflow"] <= 0, "the page is wider than a phone's screen"
    assert seen["phonePainted"] > 0, "a browser that came later did not get the canvas drawn so far"
    assert "alicehello from alice" in seen["phoneHistory"], "who joins later does not see the conversation"
    assert seen["paintedAfterClear"] == 0
    assert seen["boardGap"] <= 20, "blank space under the canvas"
    assert seen["whileDisconnected"] == {
        "state": "disconnected",
        "latency": "\u2013",  # an en dash: no value
        "textDisabled": True,
        "sendDisabled": True,
    }
    assert seen["chatEnabledAgain"] is True
    assert seen["iconStatus"] == 200
    assert seen["failedRequests"] == []
    for name in ("alice", "bob", "phone"):
        assert (screenshots / f"demo-{name}.png").stat().st_size > 0


@pytest.mark.parametrize("topology", ["development_demo", "staffed_production_demo"])
def test_the_admin_ui_watches_the_demo_and_disconnects_a_page(topology: str, request: pytest.FixtureRequest) -> None:
    """The Admin UI from npm, served by the demo: open to anyone in development, to a staff user
    logged into Django's admin in production."""
    demo = request.getfixturevalue(topology)
    url, *staff = (demo,) if isinstance(demo, str) else demo
    screenshots = ARTIFACTS / topology
    screenshots.mkdir(parents=True, exist_ok=True)
    seen = run_node_script(ADMIN_UI_BROWSER, url, str(screenshots), *staff, timeout=120)
    assert seen["listed"] is True
    assert seen["upgraded"] is True, "the UI does not show the page's socket on WebSocket"
    servers = seen["servers"]
    assert any(row.startswith("worker-") for row in servers) and any("#" in row for row in servers), servers
    assert any(row.startswith("lobby") for row in seen["rooms"]), seen["rooms"]
    assert seen["aliceConnected"] is False
    assert seen["listedAfter"] is False, "the UI still lists the disconnected socket"


async def test_a_program_without_an_origin_connects_to_the_demo_over_websocket(development_demo: str) -> None:
    """python-socketio's client sends no ``Origin``: a program, not a page (Node's server takes it
    too); with the demo's ``ALLOWED_HOSTS`` it connects over WebSocket straight away."""
    async with sio_client(development_demo) as client:
        assert client.transport() == "websocket"
        assert await client.call("whoami", timeout=5) == f"guest-{client.get_sid()[:4]}"


def test_make_demo_takes_a_port() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "demo", "demo-production", "PORT=8010"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "manage.py runserver 127.0.0.1:8010" in dry_run.stdout
    assert "demo_project.production --port 8010" in dry_run.stdout


@pytest.mark.parametrize("topology", ["development", "production"])
def test_a_restarted_demo_shows_no_ghost(topology: str, tmp_path: Path) -> None:
    """Two people in a room while the demo restarts (``runserver`` as autoreload restarts it; every
    process of the production topology): both come back as the sockets they were (connection state
    recovery), and the presence list never shows anyone twice."""
    with contextlib.ExitStack() as stack:
        if topology == "development":
            env = django_env("tests.settings_demo", SIOLESS_TEST_SQLITE=str(tmp_path / "db.sqlite3"))
            port, starts = free_port(), itertools.count()
            url = f"http://127.0.0.1:{port}"

            def start() -> Process:
                return runserver(f"demo-restart-{next(starts)}", env, port)[0]
        else:
            start, url, _ = stack.enter_context(production_demo_starter())
        server = start()
        stack.callback(lambda: server.stop(timeout=40))
        command = ["node", str(DEMO_BROWSER), url, str(tmp_path), "restart"]
        browser = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        stack.callback(browser.kill)
        assert browser.stdout is not None and browser.stdin is not None
        assert select.select([browser.stdout], [], [], 60)[0], "the two pages did not get into the room"
        assert browser.stdout.readline().strip() == "ready"
        server.stop(timeout=40)
        server = start()
        browser.stdin.write("restarted\n")
        browser.stdin.flush()
        out, _ = browser.communicate(timeout=90)
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["recovered"] == ["yes", "yes"]
    assert seen["presences"] == ["In lobby: alice, bob"]
