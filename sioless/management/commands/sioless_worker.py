"""``manage.py sioless_worker``: run the socket worker for some or all shards."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sioless.conf import conf
from sioless.server import sio
from sioless.worker import Worker


class Command(BaseCommand):
    help = "Run the sioless socket worker: Socket.IO logic and handlers for the given shards."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--shard",
            type=int,
            action="append",
            dest="shards",
            help="A shard to serve (repeat for several); default: every shard.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        shards = options["shards"] or list(range(conf.SHARDS))
        bad = [shard for shard in shards if not 0 <= shard < conf.SHARDS]
        if bad:
            raise CommandError(f"shards {bad} out of range: SIOLESS['SHARDS'] is {conf.SHARDS}")
        _say_what_it_does()
        asyncio.run(self.serve(Worker(sio, sio.channel_layer, sorted(set(shards)))))

    async def serve(self, worker: Worker) -> None:
        """Run the worker; SIGTERM and SIGINT stop it gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()


def _say_what_it_does() -> None:
    """Print the worker's own log lines (which shards it serves or stands by for, its revivals)
    when the project's LOGGING does not place sioless' logs anywhere."""
    sioless_logger = logging.getLogger("sioless")
    if not sioless_logger.hasHandlers():
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        sioless_logger.addHandler(handler)
        sioless_logger.setLevel(logging.INFO)
