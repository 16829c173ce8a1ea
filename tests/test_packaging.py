"""The wheel a user installs: typed, with its migrations, and the PostgreSQL extra."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e


def test_the_wheel_ships_py_typed_the_migrations_and_a_postgres_extra(tmp_path: Path) -> None:
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)]
    subprocess.run(build, check=True, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("sioless-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    assert {"sioless/py.typed", "sioless/migrations/0001_initial.py"} <= names
    assert not any(name.startswith(("tests/", "demo_project/")) for name in names)
    assert 'Requires-Dist: psycopg[binary]>=3.2; extra == "postgres"' in metadata
