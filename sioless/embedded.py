"""Development mode: the socket worker inside the ASGI process, started on first use.

daphne's runserver has no ASGI lifespan, so the first connection starts the
worker (all shards) and the heartbeat's ticker as tasks of the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .conf import conf

logger = logging.getLogger(__name__)

_running: dict[asyncio.AbstractEventLoop, asyncio.Future[Any]] = {}


def ensure_worker() -> None:
    """Start the in-process worker and ticker on the running loop, once."""
    loop = asyncio.get_running_loop()
    running = _running.get(loop)
    if running is not None and not running.done():
        return
    # imported at first use: the engine side loads neither the worker nor the ORM models at import
    from .heartbeat import Ticker
    from .server import sio
    from .worker import Worker

    worker = Worker(sio, sio.channel_layer, range(conf.SHARDS), embedded=True)
    ticker = Ticker(sio.channel_layer, stands_by=True)
    _running[loop] = asyncio.gather(worker.run(), ticker.run())
    logger.info("sioless started its embedded worker")
