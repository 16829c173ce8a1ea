"""autobahn's debug lines (of every connection and every frame) are formatted only when debug
lines are logged."""

from __future__ import annotations

import pprint

import txaio
from autobahn.twisted import websocket  # what daphne loads: autobahn on Twisted
from autobahn.websocket import protocol

from sioless.autobahn_debug import format_only_when_debugging


def test_autobahn_formats_its_debug_lines_only_when_they_are_logged() -> None:
    settings = [("openHandshakeTimeout", 5, "WebSocketServerFactory")]
    format_only_when_debugging()
    format_only_when_debugging()  # once only: not wrapped twice
    assert protocol.pformat(settings) == ""
    assert protocol.hltype(format_only_when_debugging) == websocket.hltype(format_only_when_debugging) == ""
    assert protocol.hlval(12) == websocket.hlval(12) == ""
    txaio.set_global_log_level("debug")
    try:
        assert protocol.pformat(settings) == pprint.pformat(settings)
        assert "format_only_when_debugging" in websocket.hltype(format_only_when_debugging)
        assert "12" in websocket.hlval(12, color="green")
    finally:
        txaio.set_global_log_level("info")
