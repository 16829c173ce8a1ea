"""The Django user a new session starts with, for the consumers (``socket.user`` in handlers).

Looked up as Channels' ``AuthMiddlewareStack`` looks it up, but only where it can be someone: a
handshake (a request without a ``sid``) that carries Django's session cookie. Anything else (a
script or native app without the cookie, a page before its login, every later request of a polling
session) is ``AnonymousUser`` at once, without a hop to a thread and a database read per request.
A project whose ``asgi.py`` wraps sioless' routes in ``AuthMiddlewareStack`` itself keeps its own
lookup.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from django.apps import apps
from django.conf import settings
from django.http.cookie import parse_cookie

from .handshake import parsed_query

ASGIApp = Any


def with_session_user(app: ASGIApp) -> ASGIApp:
    """``app`` with ``scope["user"]`` set (unchanged where Django's auth or sessions are not installed)."""
    if not (apps.is_installed("django.contrib.auth") and apps.is_installed("django.contrib.sessions")):
        return app
    from django.contrib.auth.models import AnonymousUser

    looked_up = AuthMiddlewareStack(app)

    async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if "user" in scope:  # the project's own middleware looked it up
            await app(scope, receive, send)
        elif _may_be_someone(scope):
            await looked_up(scope, receive, send)
        else:
            await app({**scope, "user": AnonymousUser()}, receive, send)

    return endpoint


def _may_be_someone(scope: dict[str, Any]) -> bool:
    """Whether the request starts a session and carries Django's session cookie."""
    if "sid" in parsed_query(scope):
        return False
    cookies = [value for name, value in scope.get("headers", []) if name.lower() == b"cookie"]
    return any(settings.SESSION_COOKIE_NAME in parse_cookie(value.decode("latin-1")) for value in cookies)
