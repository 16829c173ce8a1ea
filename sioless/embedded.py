"""Development mode: the socket worker inside the ASGI process, started on first use.

daphne's runserver has no ASGI lifespan, so the first connection starts the
worker (all shards, and the heartbeat) as a task of the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging

from .conf import conf
from .server import sio
from .worker import Worker

logger = logging.getLogger(__name__)

_workers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def ensure_worker() -> None:
    """Start the in-process worker on the running loop, once."""
    loop = asyncio.get_running_loop()
    task = _workers.get(loop)
    if task is not None and not task.done():
        return
    worker = Worker(sio, sio.channel_layer, range(conf.SHARDS), heartbeat=True)
    _workers[loop] = loop.create_task(worker.run(), name="sioless-embedded-worker")
    logger.info("sioless started its embedded worker")
