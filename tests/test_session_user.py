"""The Django user a session starts with: looked up (as Channels' AuthMiddlewareStack does) only
for a handshake that carries Django's session cookie; everything else is AnonymousUser at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore

from sioless.session_user import with_session_user
from tests.support.inprocess import let_go_of_the_database

pytestmark = pytest.mark.django_db(transaction=True)

HANDSHAKE = b"EIO=4&transport=websocket"


@pytest.fixture(autouse=True)
async def database_let_go() -> AsyncIterator[None]:
    yield
    await let_go_of_the_database()


async def user_seen(scope: dict[str, Any]) -> Any:
    """The ``scope["user"]`` an app behind :func:`with_session_user` gets for ``scope``."""
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["user"])

    await with_session_user(app)({"type": "websocket", "path": "/socket.io/", **scope}, None, None)
    return seen[0]


def no_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a lookup of the session's user fail the test."""

    async def refused(scope: dict[str, Any]) -> None:
        raise AssertionError("the user was looked up")

    monkeypatch.setattr("channels.auth.get_user", refused)


@sync_to_async
def logged_in_cookie() -> tuple[bytes, int]:
    """A session cookie of a logged-in user, and the user's pk."""
    user = User.objects.create_user("ada", password="x")
    session = SessionStore()
    session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0]})
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode(), user.pk


async def test_a_handshake_with_the_session_cookie_gets_the_sessions_user() -> None:
    cookie, pk = await logged_in_cookie()
    user = await user_seen({"query_string": HANDSHAKE, "headers": [(b"cookie", cookie)]})
    assert user.is_authenticated and user.pk == pk


async def test_a_handshake_without_the_session_cookie_is_anonymous_without_a_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_lookup(monkeypatch)
    user = await user_seen({"query_string": HANDSHAKE, "headers": [(b"cookie", b"theme=dark")]})
    assert not user.is_authenticated


async def test_a_request_of_an_open_session_is_never_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A polling GET or POST, an upgrade: the session's user was taken at its handshake."""
    cookie, _ = await logged_in_cookie()
    no_lookup(monkeypatch)
    user = await user_seen({"query_string": HANDSHAKE + b"&sid=abc", "headers": [(b"cookie", cookie)]})
    assert not user.is_authenticated


async def test_a_user_the_projects_own_middleware_found_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    no_lookup(monkeypatch)
    found = object()
    assert await user_seen({"query_string": HANDSHAKE, "headers": [], "user": found}) is found
