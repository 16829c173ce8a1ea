"""Why a socket disconnected: the strings socket.io gives ``disconnect`` handlers."""

from enum import StrEnum


class DisconnectReason(StrEnum):
    CLIENT_NAMESPACE_DISCONNECT = "client namespace disconnect"
    SERVER_NAMESPACE_DISCONNECT = "server namespace disconnect"
    TRANSPORT_CLOSE = "transport close"
    TRANSPORT_ERROR = "transport error"
    PING_TIMEOUT = "ping timeout"
    PARSE_ERROR = "parse error"
    SERVER_SHUTTING_DOWN = "server shutting down"
    FORCED_CLOSE = "forced close"
