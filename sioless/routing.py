"""URL patterns for ``asgi.py``: the Engine.IO endpoint, over WebSocket and HTTP long-polling."""

from __future__ import annotations

from typing import Any, cast

from channels.auth import AuthMiddlewareStack
from django.apps import apps
from django.urls import path

from .conf import conf
from .consumers import EngineConsumer
from .handshake import parsed_query
from .polling import PollingConsumer, UpgradeConsumer

_new_websocket = EngineConsumer.as_asgi()
_upgrade = UpgradeConsumer.as_asgi()


async def websocket_endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A WebSocket that starts a session, or (with a ``sid``) upgrades a polling one."""
    app = _upgrade if "sid" in parsed_query(scope) else _new_websocket
    await app(scope, receive, send)


def _polling_endpoint() -> Any:
    """The polling consumer; with Django's sessions and auth installed, it sees ``scope["user"]``
    as the WebSocket does under ``AuthMiddlewareStack``."""
    app = PollingConsumer.as_asgi()
    if apps.is_installed("django.contrib.auth") and apps.is_installed("django.contrib.sessions"):
        return AuthMiddlewareStack(app)
    return app


# cast: Django's stubs type a route's target as a view, Channels routes ASGI apps
websocket_urlpatterns = [path(f"{conf.PATH}/", cast(Any, websocket_endpoint))]
http_urlpatterns = [path(f"{conf.PATH}/", _polling_endpoint())]
