"""The scaling run's report (``python -m bench.cluster.scale``): each deployment's cost per event
beside its server's smallest deployment, and the busiest worker's ceiling."""

from __future__ import annotations

from typing import Any

from bench.cluster.scale import STEPS, many_table, table


def deployment(server: str, hosts: int, shards: int, cpu_us: float, requests: float) -> dict[str, Any]:
    steps: dict[str, dict[str, float]] = {label: {"cpu_us": cpu_us, "requests": requests} for label in STEPS}
    steps["echo, saturated"]["per_s"] = 3000.0
    if shards:
        steps["echo, saturated"] |= {"busiest_worker_share": 0.5, "ceiling_per_s": 6000.0}
    return {"server": server, "hosts": hosts, "shards": shards, "steps": steps}


def test_each_deployment_is_compared_with_its_own_servers_smallest() -> None:
    rows = table(
        [
            deployment("sioless", 1, 1, 500.0, 6.0),
            deployment("sioless", 3, 4, 550.0, 6.6),
            deployment("python-socketio", 1, 0, 150.0, 0.5),
            deployment("python-socketio", 3, 0, 120.0, 0.5),
        ]
    ).splitlines()
    header, _, *deployments = rows
    assert header.count("CPU µs/") == len(STEPS) and "Redis requests/broadcast" in header
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in deployments]
    assert cells[0][:5] == ["sioless", "1", "1", "500.0 (1.00x)", "6.00 (1.00x)"]
    assert cells[1][3:5] == ["550.0 (1.10x)", "6.60 (1.10x)"]
    assert cells[1][-2:] == ["50", "6,000"]
    assert cells[3][:5] == ["python-socketio", "3", "-", "120.0 (0.80x)", "0.50 (1.00x)"]
    assert cells[3][-2:] == ["-", "-"]


def test_the_broadcast_to_many_is_a_row_a_server() -> None:
    many = {"hosts": 3, "members": 10_000, "p50_ms": 120.0, "p99_ms": 450.5, "cpu_us": 40.0, "lost": 0}
    rows = many_table({"sioless": {**many, "shards": 4}, "python-socketio": {**many, "shards": 0}}).splitlines()
    assert rows[2] == "| sioless | 3 | 4 | 10,000 | 120.0 | 450.5 | 40.0 | 0 |"
    assert rows[3].startswith("| python-socketio | 3 | - |")
