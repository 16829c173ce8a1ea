"""Sync twins of async methods, Django style: ``aemit`` and ``emit``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import async_to_sync

P = ParamSpec("P")
R = TypeVar("R")


def sync_twin(method: Callable[P, Awaitable[R]]) -> Callable[P, R]:
    """A blocking version of an async method, callable from sync code and sync handlers."""

    @functools.wraps(method)
    def twin(*args: P.args, **kwargs: P.kwargs) -> R:
        return async_to_sync(method)(*args, **kwargs)

    twin.__name__ = twin.__qualname__ = method.__name__.removeprefix("a")
    twin.__doc__ = f"Blocking twin of ``{method.__name__}``."
    return twin
