"""autobahn (daphne's WebSocket protocol) formats the debug lines of every connection, its ~30
settings with ``pprint.pformat`` and method names with ``hltype``, before its logger drops them:
a tenth of daphne's CPU in a burst of connections. :func:`format_only_when_debugging` has them
formatted only when debug lines are logged (txaio's global log level, which autobahn's loggers
follow unless one was given a level of its own)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

#: txaio's log levels at which autobahn's debug lines are logged.
DEBUGGING = frozenset({"debug", "trace"})
#: The formatters of autobahn's protocol module that run for every connection.
FORMATTERS = ("pformat", "hltype")

_installed = False


def format_only_when_debugging() -> None:
    """Wrap autobahn's formatters, once, if daphne has loaded autobahn's protocol module."""
    global _installed
    protocol = sys.modules.get("autobahn.websocket.protocol")
    if _installed or protocol is None:
        return
    _installed = True
    import txaio

    # txaio's functions are those of the framework it uses (Twisted, under daphne)
    level = txaio.get_global_log_level  # type: ignore[attr-defined]
    for name in FORMATTERS:
        setattr(protocol, name, _when_debugging(getattr(protocol, name), level))


def _when_debugging(formatter: Callable[[Any], str], level: Callable[[], str]) -> Callable[[Any], str]:
    def format_when_debugging(value: Any) -> str:
        return formatter(value) if level() in DEBUGGING else ""

    return format_when_debugging
