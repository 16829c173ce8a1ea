"""The demo's round-robin balancer, able to cut every connection it carries as a network failure
would: on SIGUSR1 both ends of each are reset, with no WebSocket or Engine.IO close, and the
connections that come in the next second too (a polling client between two requests).

Usage: python -m tests.support.cutting_balancer <listen port> <backend port> [<backend port> ...]
"""

from __future__ import annotations

import asyncio
import signal
import sys

from demo_project.balancer import Balancer, Connection
from demo_project.balancer import serve as balancing

#: Seconds after a cut during which new connections are reset too.
DOWN_FOR = 1.0


class CuttingBalancer(Balancer):
    """A balancer that knows the connections it carries, to reset them all at once."""

    def __init__(self, backends: list[int]) -> None:
        super().__init__(backends)
        self.carried: set[asyncio.StreamWriter] = set()
        self.down_until = 0.0

    async def connect(self) -> Connection | None:
        backend = await super().connect()
        if backend is not None:
            self.carried.add(backend[1])
        return backend

    async def serve_client(self, client: Connection) -> None:
        if asyncio.get_running_loop().time() < self.down_until:
            client[1].transport.abort()
            return
        self.carried.add(client[1])
        try:
            await super().serve_client(client)
        finally:
            self.carried.discard(client[1])

    def cut(self) -> None:
        """Reset every connection, client and backend side, and those of the next second."""
        self.down_until = asyncio.get_running_loop().time() + DOWN_FOR
        for writer in list(self.carried):
            writer.transport.abort()
        self.carried.clear()
        print("cut", flush=True)


async def serve(port: int, backends: list[int]) -> None:
    balancer = CuttingBalancer(backends)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, balancer.cut)
    await balancing(port, balancer)


if __name__ == "__main__":
    listen, *targets = (int(arg) for arg in sys.argv[1:])
    asyncio.run(serve(listen, targets))
