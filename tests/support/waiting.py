"""Waiting for state held outside the test's process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll state outside this process until ``condition()`` holds; TimeoutError after ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (the state is in other processes: nothing to await)
            await asyncio.sleep(0.1)
