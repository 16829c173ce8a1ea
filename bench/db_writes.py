"""Database row writes per connect, join, event and disconnect, read from PostgreSQL's statistics.

Usage (a server and worker running against database DB, e.g. `make demo`-like or the test settings):

    python bench/db_writes.py http://127.0.0.1:8000 DB

Runs one python-socketio client through connect, join, 100 events, one change of
socket data, leave and disconnect, and prints the rows written to sioless' tables
by each step.
"""

from __future__ import annotations

import asyncio
import sys
import time

import psycopg
import socketio

TABLES = "('sioless_enginesession', 'sioless_namespacesocket', 'sioless_roommembership')"


def row_writes(database: str) -> int:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=database) as db:
        time.sleep(11)  # an idle backend flushes its statistics within 10 s
        db.execute("SELECT pg_stat_clear_snapshot()")
        (total,) = db.execute(
            f"SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables WHERE relname IN {TABLES}"
        ).fetchone()  # type: ignore[misc]
    return int(total or 0)


async def main(url: str, database: str) -> None:
    client = socketio.AsyncClient()
    steps: list[tuple[str, int]] = []
    before = row_writes(database)

    async def step(name: str) -> None:
        nonlocal before
        after = row_writes(database)
        steps.append((name, after - before))
        before = after

    await client.connect(url, transports=["websocket"])
    await step("connect (engine session + socket)")
    await client.call("join", "bench-room")
    await step("join a room")
    for n in range(100):
        await client.call("echo", n)
    await step("100 acked events")
    await client.call("set_data", ("k", "v"))
    await step("one change of socket.data")
    await client.call("leave", "bench-room")
    await step("leave a room")
    await client.disconnect()
    await asyncio.sleep(0.5)
    await step("disconnect (socket, rooms, session)")
    for name, writes in steps:
        print(f"{name:40} {writes:4} rows")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
