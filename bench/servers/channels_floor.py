"""The floor of sioless's development mode in Channels' own parts: the benchmark's frames (as
``floor.py`` speaks them) served by Channels' ``AsyncWebsocketConsumer`` behind the middleware
stack of the demo's ``asgi.py``, a room being a group of Channels' stock in-memory layer. No
sioless and no state but the layer's: what one Channels consumer a connection, fed by a
channel layer, costs per connection and per frame on daphne.

Usage: daphne -p <port> bench.servers.channels_floor:application
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

settings.configure(
    ALLOWED_HOSTS=["*"],  # as the test settings sioless runs with in the benchmark
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions", "channels"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10_000}}},
)
django.setup()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from bench.servers.floor import on_frame, open_frame  # noqa: E402


class FloorConsumer(AsyncWebsocketConsumer):
    """One connection: a room joined is a layer group, a broadcast a ``group_send``."""

    async def connect(self) -> None:
        await self.accept()
        await self.send(open_frame())

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data:
            await on_frame(text_data, self.base_send, self.join, self.broadcast)

    async def join(self, room: str) -> None:
        await self.channel_layer.group_add(room, self.channel_name)
        self.groups.append(room)  # left at disconnect

    async def broadcast(self, room: str, frame: str) -> None:
        await self.channel_layer.group_send(room, {"type": "news", "frame": frame})

    async def news(self, message: dict[str, Any]) -> None:
        await self.send(message["frame"])


application = AuthMiddlewareStack(URLRouter([path("socket.io/", FloorConsumer.as_asgi())]))
