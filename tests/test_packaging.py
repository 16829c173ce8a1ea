"""The package a user installs: ``python -m build`` gives a wheel (typed, with its migrations and
the PostgreSQL extra) and an sdist, and the wheel installs into a new virtual environment with
that extra, its version the one ``setup.cfg`` gives."""

from __future__ import annotations

import configparser
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e

#: A build and an install from the package registries: minutes at most.
TIMEOUT = 600


def test_the_built_wheel_and_sdist_install_with_the_postgres_extra(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)]
    subprocess.run(build, check=True, timeout=TIMEOUT, capture_output=True)
    (wheel,) = dist.glob("sioless-*.whl")
    (sdist,) = dist.glob("sioless-*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    assert {"sioless/py.typed", "sioless/migrations/0003_lost_sessions_room_joins.py"} <= names
    assert not any(name.startswith(("tests/", "demo_project/")) for name in names)
    assert 'Requires-Dist: psycopg[binary]>=3.2; extra == "postgres"' in metadata
    with tarfile.open(sdist) as archive:
        assert any(name.endswith("sioless/migrations/0001_initial.py") for name in archive.getnames())

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=TIMEOUT)
    install = [str(venv / "bin" / "pip"), "install", "--quiet", f"{wheel}[postgres]"]
    subprocess.run(install, check=True, timeout=TIMEOUT, capture_output=True)
    imported = [str(venv / "bin" / "python"), "-c", "import psycopg, sioless; print(sioless.__version__)"]
    version = subprocess.run(imported, check=True, timeout=60, capture_output=True, text=True).stdout.strip()
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert version == setup["metadata"]["version"]
