"""Twisted (daphne's network layer) buffers every write to a TCP connection and sends it when the
reactor next finds the socket writable: for each WebSocket frame, the socket is added to the
reactor's writers and removed again (two ``epoll_ctl`` calls) and sent in a turn of the reactor
of its own. :func:`write_through` has a write to a connection with nothing waiting sent at once,
as asyncio's transports do (uvicorn's); what the socket does not take, a write while data waits,
and a write that fails are buffered as before, so the reactor finishes them (or loses the
connection) as it always did."""

from __future__ import annotations

import sys
from typing import Any

#: Twisted's TCP module, which daphne's processes load.
TCP_MODULE = "twisted.internet.tcp"

_installed = False


def write_through() -> None:
    """Have Twisted's TCP connections send a write at once when nothing waits, once, if daphne
    has loaded Twisted."""
    global _installed
    if _installed or TCP_MODULE not in sys.modules:
        return
    _installed = True
    connection = sys.modules[TCP_MODULE].Connection
    connection.write = _sent_at_once(connection.write)


def _sent_at_once(buffered: Any) -> Any:
    def write(self: Any, data: bytes) -> None:
        if (
            type(data) is bytes
            and not self.TLS  # its writes go through the TLS protocol first
            and self.connected
            and not self.disconnecting
            and not self._writeDisconnected
            and not self._tempDataBuffer
            and self.offset == len(self.dataBuffer)
        ):
            sent = self.writeSomeData(data)  # the bytes the socket took, or an error
            if not isinstance(sent, Exception) and sent > 0:
                if sent == len(data):
                    return
                data = data[sent:]
        buffered(self, data)

    return write
