"""autobahn's per-connection debug lines are formatted only when debug lines are logged."""

from __future__ import annotations

import pprint

import txaio
from autobahn.twisted import websocket  # noqa: F401  (what daphne loads: autobahn on Twisted)
from autobahn.websocket import protocol

from sioless.autobahn_debug import format_only_when_debugging


def test_autobahn_formats_its_debug_lines_only_when_they_are_logged() -> None:
    settings = [("openHandshakeTimeout", 5, "WebSocketServerFactory")]
    format_only_when_debugging()
    format_only_when_debugging()  # once only: not wrapped twice
    assert protocol.pformat(settings) == ""
    assert protocol.hltype(format_only_when_debugging) == ""
    txaio.set_global_log_level("debug")
    try:
        assert protocol.pformat(settings) == pprint.pformat(settings)
        assert "format_only_when_debugging" in protocol.hltype(format_only_when_debugging)
    finally:
        txaio.set_global_log_level("info")
