"""Running the user's handlers (and receivers of sioless' signals): async ones awaited, sync ones
in Django's thread; the convention by which a handler takes its ack into its own hands; the
worker's background tasks."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from channels.db import database_sync_to_async
from django.dispatch import Signal

from ..socket import Socket

logger = logging.getLogger(__name__)

#: Called as the handler of the message a task handles starts: its receipt is acknowledged then.
handler_started: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "sioless_handler_started", default=None
)


async def call_handler(handler: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await an async handler; run a sync one in Django's thread, with fresh DB connections. The
    task's :data:`handler_started` hook, if any, is called as the handler starts (a sync handler
    may first wait for the thread behind others)."""
    started = handler_started.get()
    if inspect.iscoroutinefunction(handler):
        if started is not None:
            started()
        return await handler(*args, **kwargs)
    if started is None:
        return await database_sync_to_async(handler)(*args, **kwargs)
    loop = asyncio.get_running_loop()

    def start_then_run() -> Any:
        loop.call_soon_threadsafe(started)
        return handler(*args, **kwargs)

    return await database_sync_to_async(start_then_run)()


@functools.lru_cache(maxsize=1024)
def takes_ack(handler: Callable[..., Any]) -> bool:
    """Whether a handler takes the ack into its own hands: it has a keyword-only ``ack`` parameter."""
    try:
        parameter = inspect.signature(handler).parameters.get("ack")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind is inspect.Parameter.KEYWORD_ONLY


def handler_name(handler: Callable[..., Any] | None) -> str:
    """A handler's name for the logs: its module and qualified name."""
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)}"


class Tasks:
    """The worker's background tasks: handler runs, hand-overs, answers to calls."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(self, job: Coroutine[Any, Any, Any]) -> None:
        """Run ``job`` in the background; the worker waits for it before giving a shard up."""
        task = asyncio.ensure_future(job)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def run_handler(
        self, handler: Callable[..., Any], *args: Any, about: str = "", after: Awaitable[None] | None = None
    ) -> None:
        """Run a handler or callback in the background, logging what it raises (``about``: which
        handler of what, for the log); once ``after`` is done, if given (a write it must see)."""

        async def run() -> None:
            try:
                if after is not None:
                    await asyncio.shield(after)
                await call_handler(handler, *args)
            except Exception:
                logger.exception("%s raised", about or handler_name(handler))

        self.spawn(run())

    def send_signal(self, signal: Signal, socket: Socket, after: Awaitable[None] | None = None, **named: Any) -> None:
        """Send one of :mod:`sioless.signals` about ``socket`` in the background, once ``after`` is
        done (if given), logging what its receivers raise."""
        if not signal.receivers or not signal.has_listeners(Socket):  # the first: per event, cheap
            return

        async def send() -> None:
            try:
                if after is not None:
                    await asyncio.shield(after)
                results = await signal.asend_robust(sender=Socket, socket=socket, **named)
            except Exception:
                logger.exception("a signal about %r was not sent", socket)
                return
            for receiver, result in results:
                if isinstance(result, Exception):
                    logger.error("signal receiver %s raised", handler_name(receiver), exc_info=result)

        self.spawn(send())

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the tasks running now."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=timeout)
