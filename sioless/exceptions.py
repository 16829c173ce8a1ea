"""Every error sioless raises, under one root class."""

from __future__ import annotations

from typing import Any


class SiolessError(Exception):
    """Root of the errors sioless raises."""


class ProtocolError(SiolessError):
    """A packet that does not follow Engine.IO v4 or Socket.IO v5.

    The codecs raise it for every malformed input; the server answers it with a
    clean close of the offending connection only.
    """


class PayloadError(SiolessError, ValueError):
    """Data that cannot be sent to a client: not JSON (``NaN``, infinity, an object JSON has no
    form for) or nested deeper than socket.io clients take."""


class ConnectionRefused(SiolessError):
    """Raised by a ``connect`` handler to refuse a client.

    The client receives a CONNECT_ERROR packet whose ``message`` is the message
    given here and whose ``data`` is ``data`` (when given).
    """

    def __init__(self, message: str = "Connection refused", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        """The CONNECT_ERROR packet's data."""
        return {"message": self.message} if self.data is None else {"message": self.message, "data": self.data}


class AckTimeout(SiolessError, TimeoutError):
    """A client did not acknowledge a ``call`` within its timeout. After ``call_all``, ``answers``
    holds the acknowledgements that did come, by sid."""

    def __init__(self, message: str, answers: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.answers = answers or {}


class SocketGone(SiolessError):
    """The socket a ``call`` waited on disconnected before it acknowledged."""
