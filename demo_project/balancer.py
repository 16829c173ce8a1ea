"""A TCP load balancer for the demo's production topology (and the tests): it spreads connections
over backends in turn, with no sticky sessions. A backend that refuses a connection is skipped for
that connection. Use a real load balancer in production.

Usage: python -m demo_project.balancer <listen port> <backend port> [<backend port> ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes one way until the reader ends; then end the writer."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def serve(port: int, backends: list[int]) -> None:
    turns = itertools.cycle(backends)

    async def accept(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        for _ in backends:
            try:
                backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", next(turns))
            except OSError:
                continue
            await asyncio.gather(pipe(client_reader, backend_writer), pipe(backend_reader, client_writer))
            return
        client_writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    listen, *targets = (int(arg) for arg in sys.argv[1:])
    asyncio.run(serve(listen, targets))
