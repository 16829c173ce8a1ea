"""URL patterns for ``asgi.py``: the Engine.IO endpoint, over WebSocket and HTTP long-polling."""

from __future__ import annotations

from typing import Any, cast

from django.urls import path

from .conf import conf
from .consumers import EngineConsumer
from .handshake import parsed_query
from .polling import PollingConsumer, UpgradeConsumer
from .session_user import with_session_user

_new_websocket = EngineConsumer.as_asgi()
_upgrade = UpgradeConsumer.as_asgi()


async def websocket_endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A WebSocket that starts a session, or (with a ``sid``) upgrades a polling one."""
    app = _upgrade if "sid" in parsed_query(scope) else _new_websocket
    await app(scope, receive, send)


# cast: Django's stubs type a route's target as a view, Channels routes ASGI apps
websocket_urlpatterns = [path(f"{conf.PATH}/", cast(Any, with_session_user(websocket_endpoint)))]
http_urlpatterns = [path(f"{conf.PATH}/", with_session_user(PollingConsumer.as_asgi()))]
