"""autobahn (daphne's WebSocket protocol) formats its debug lines before its logger drops them:
a connection's ~30 settings with ``pprint.pformat``, and the method name, peer and byte count of
every frame received or sent with ``hltype`` and ``hlval`` (a tenth of daphne's CPU in a burst of
connections, a twentieth of an echo). :func:`format_only_when_debugging` has them formatted only
when debug lines are logged (txaio's global log level, which autobahn's loggers follow unless one
was given a level of its own)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

#: txaio's log levels at which autobahn's debug lines are logged.
DEBUGGING = frozenset({"debug", "trace"})
#: autobahn's modules that format debug lines on every connection or frame, and their formatters.
MODULES = ("autobahn.websocket.protocol", "autobahn.twisted.websocket")
FORMATTERS = ("pformat", "hltype", "hlval")

_installed = False


def format_only_when_debugging() -> None:
    """Wrap autobahn's formatters, once, if daphne has loaded autobahn."""
    global _installed
    if _installed or MODULES[0] not in sys.modules:
        return
    _installed = True
    import txaio

    # txaio's functions are those of the framework it uses (Twisted, under daphne)
    level = txaio.get_global_log_level  # type: ignore[attr-defined]
    for module in filter(None, map(sys.modules.get, MODULES)):
        for name in FORMATTERS:
            if hasattr(module, name):
                setattr(module, name, _when_debugging(getattr(module, name), level))


def _when_debugging(formatter: Callable[..., str], level: Callable[[], str]) -> Callable[..., str]:
    def format_when_debugging(value: Any, *args: Any, **kwargs: Any) -> str:
        return formatter(value, *args, **kwargs) if level() in DEBUGGING else ""

    return format_when_debugging
