"""The engine side's reading of a client's request: its Engine.IO query, and the handshake facts
handlers see (query, headers, address, URL, Django user)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from .protocol.engineio import HandshakeError
from .records import Handshake

#: Headers handlers never see: the cookie carries Django's session (``socket.user`` is its user).
_NEVER_KEPT = frozenset({"cookie"})


def query_error(query: dict[str, list[str]], transport: str) -> HandshakeError | None:
    """Why an Engine.IO request with this query cannot start a session here, if it cannot."""
    if query.get("transport") != [transport]:
        return HandshakeError.UNKNOWN_TRANSPORT
    if "sid" in query:
        return HandshakeError.UNKNOWN_SID
    if query.get("EIO") != ["4"]:
        return HandshakeError.UNSUPPORTED_PROTOCOL_VERSION
    return None


def parsed_query(scope: dict[str, Any]) -> dict[str, list[str]]:
    """The query string of an ASGI scope, parsed."""
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def handshake_from_scope(scope: dict[str, Any], query: dict[str, list[str]], *, with_user: bool) -> Handshake:
    """The handshake facts of an ASGI scope whose query is parsed, as handlers see them; the
    Django user of its session only ``with_user`` (the page's origin is trusted with it)."""
    query_string = scope.get("query_string", b"").decode("latin-1")
    user = scope.get("user") if with_user else None
    client = scope.get("client") or ("", 0)
    return Handshake(
        query={key: values[-1] for key, values in query.items()},
        headers={name: value for name, value in _decoded_headers(scope) if name not in _NEVER_KEPT},
        address=str(client[0]),
        url=f"{scope.get('path', '')}?{query_string}",
        issued=time.time(),
        user_id=str(user.pk) if user is not None and user.is_authenticated else None,
    )


def _decoded_headers(scope: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in scope.get("headers", [])]
