"""Which web pages may connect: the ``Origin`` check against cross-site WebSocket hijacking.

A browser sends the user's cookies with a WebSocket (and, with credentials, a polling request)
to this site from a page of any other site; only the ``Origin`` header tells them apart. So a
connection from a browser page is served with the user's session only when the page is of this
site (its origin's host is the request's ``Host``, one of ``ALLOWED_HOSTS``: a page of another
host whose name an attacker rebound to this server's address is not; and its scheme is the
request's: ``https`` for a secure one) or of an origin listed in
``CORS_ALLOWED_ORIGINS``. ``"*"`` in that list admits every other origin *without* credentials:
its connections are anonymous. Other origins are refused. Requests with no ``Origin`` come from
programs, not pages, and have nothing to hijack.
"""

from __future__ import annotations

import enum
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from .conf import conf


class Trust(enum.Enum):
    """What a request's origin is allowed."""

    CREDENTIALS = "credentials"  # served as the user its cookies say
    ANONYMOUS = "anonymous"  # served, but as no user
    REFUSED = "refused"


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """The last value of a request header, decoded; None when absent."""
    found = None
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            found = value
    return found.decode("latin-1") if found is not None else None


def origin_trust(scope: dict[str, Any]) -> Trust:
    """How far the page that made this request (if a page did) is trusted."""
    origin = header(scope, b"origin")
    if origin is None or origin in conf.CORS_ALLOWED_ORIGINS or _same_origin(origin, scope):
        return Trust.CREDENTIALS
    if "*" in conf.CORS_ALLOWED_ORIGINS:
        return Trust.ANONYMOUS
    return Trust.REFUSED


def _same_origin(origin: str, scope: dict[str, Any]) -> bool:
    """Whether the page is of this very site: its host, and its scheme (a page served over plain
    HTTP is not trusted with a secure connection's session, nor the other way round: Django's CSRF
    check asks the same)."""
    host = header(scope, b"host")
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return (
        host is not None
        and parts.scheme == ("https" if _secure(scope) else "http")
        and parts.netloc.lower() == host.lower()
        and _served_host(host)
    )


def _secure(scope: dict[str, Any]) -> bool:
    """Whether the request came over TLS, as Django's ``HttpRequest.is_secure()`` tells: the
    proxy's header when ``SECURE_PROXY_SSL_HEADER`` names one and the request has it, else the
    request's own scheme."""
    if settings.SECURE_PROXY_SSL_HEADER:
        name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = header(scope, name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1"))
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return scope.get("scheme") in ("https", "wss")


def _served_host(host: str) -> bool:
    """Whether ``host`` is one of ``ALLOWED_HOSTS``, read as Django's ``HttpRequest.get_host()``
    reads it (in DEBUG, none listed means localhost)."""
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)
