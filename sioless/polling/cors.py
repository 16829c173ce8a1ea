"""CORS headers of the polling transport's responses."""

from __future__ import annotations

from typing import Any

from ..origins import Trust, origin_trust


def cors_headers(scope: dict[str, Any], *, preflight: bool) -> list[tuple[bytes, bytes]]:
    """The CORS headers for a request from an allowed origin (none for others); with credentials
    only for the origins trusted with them."""
    request = dict(scope.get("headers", []))
    origin = request.get(b"origin")
    trust = origin_trust(scope)
    if origin is None or trust is Trust.REFUSED:
        return []
    headers = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
    if trust is Trust.CREDENTIALS:
        headers.append((b"access-control-allow-credentials", b"true"))
    if preflight:
        headers += [
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
            (b"access-control-allow-headers", request.get(b"access-control-request-headers", b"content-type")),
            (b"access-control-max-age", b"86400"),
        ]
    return headers
