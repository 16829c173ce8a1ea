"""URL patterns for ``asgi.py``: the WebSocket endpoint and its HTTP refusals."""

from __future__ import annotations

from django.urls import path

from .conf import conf
from .consumers import EngineConsumer, HandshakeErrorConsumer

websocket_urlpatterns = [path(f"{conf.PATH}/", EngineConsumer.as_asgi())]
http_urlpatterns = [path(f"{conf.PATH}/", HandshakeErrorConsumer.as_asgi())]
