"""An HTTP load balancer for the demo's production topology (and the tests), with no sticky
sessions: every HTTP request, even on a kept-alive connection, goes to the next backend in turn,
and a WebSocket goes to the next backend for its whole life. A backend that refuses a connection
is skipped. Use a real load balancer in production.

Usage: python -m demo_project.balancer <listen port> <backend port> [<backend port> ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import Iterator

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes one way until the reader ends; then end the writer."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


def with_header(head: bytes, name: bytes, value: bytes) -> bytes:
    """The request head with header ``name`` set to ``value`` (replacing it if present)."""
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(name.lower() + b":")]
    return b"\r\n".join([*lines[:-2], name + b": " + value, b"", b""])


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


class Balancer:
    """Round robin over backend ports on 127.0.0.1."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.turns: Iterator[int] = itertools.count()

    async def connect(self) -> Connection | None:
        """A connection to the next backend in turn, or to the one after it that takes one. Each
        connection takes its turn once, so concurrent ones never draw the same dead backend twice."""
        first = next(self.turns)
        for step in range(len(self.backends)):
            port = self.backends[(first + step) % len(self.backends)]
            with contextlib.suppress(OSError):
                return await asyncio.open_connection("127.0.0.1", port)
        return None

    async def serve_client(self, client: Connection) -> None:
        """Forward the client's requests one by one, each to the next backend."""
        reader, writer = client
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                backend = await self.connect()
                if backend is None:
                    break
                if header(head, b"upgrade") is not None:
                    backend[1].write(head)
                    await asyncio.gather(pipe(reader, backend[1]), pipe(backend[0], writer))
                    return
                body = await reader.readexactly(int(header(head, b"content-length") or 0))
                backend[1].write(with_header(head, b"Connection", b"close") + body)
                await backend[1].drain()
                writer.write(await backend[0].read())  # the whole response: the backend closes
                await writer.drain()
                backend[1].close()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        writer.close()


async def serve(port: int, balancer: Balancer) -> None:
    """Serve on ``port`` until cancelled."""
    server = await asyncio.start_server(lambda *client: balancer.serve_client(client), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    listen, *targets = (int(arg) for arg in sys.argv[1:])
    asyncio.run(serve(listen, Balancer(targets)))
