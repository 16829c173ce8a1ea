"""The ``SIOLESS`` settings dict: one typed property per key, read once and kept until a setting
changes (``override_settings``, pytest-django's ``settings``): a packet reads several."""

from __future__ import annotations

import functools
import json
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .protocol.parsers import Parser, parser_named

DEFAULTS: dict[str, Any] = {
    "PATH": "socket.io",
    "SHARDS": 1,
    "PING_INTERVAL": 25.0,
    "PING_TIMEOUT": 30.0,
    "MAX_PAYLOAD": 1_000_000,
    "MAX_ATTACHMENTS": 10,
    "MAX_IN_FLIGHT": 32,
    "MAX_BUFFERED": 1_000_000,
    "CHANNEL_LAYER": "default",
    "EMBEDDED_WORKER": None,
    "HANDLER_MODULES": [],
    "CORS_ALLOWED_ORIGINS": [],
    "CONNECT_TIMEOUT": 45.0,
    "UPGRADE_TIMEOUT": 10.0,
    "MAX_NAMESPACES": 100,
    "MAX_NAME_LENGTH": 1000,
    "BINARY_TIMEOUT": 60.0,
    "SID_MAX_AGE": 86400.0,
    "PRIVATE_HEADERS": ["authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token", "x-csrftoken"],
    "PRIVATE_QUERY_PARAMETERS": ["token", "access_token", "api_key", "apikey", "key", "password", "secret"],
    "KEEP_AUTH": True,
    "JSON_ENCODER": "django.core.serializers.json.DjangoJSONEncoder",
    "PARSER": "default",
    "CONNECTION_STATE_RECOVERY": False,
    "MAX_DISCONNECTION_DURATION": 120.0,
    "RECOVERY_SKIPS_CONNECT_HANDLERS": True,
    "GC_THRESHOLD": (10_000, 10, 10),
}


class Settings:
    """Access to ``settings.SIOLESS`` with defaults; each value is kept once read (in the instance's
    ``__dict__``, by :func:`functools.cached_property`) until :func:`forget_values`."""

    def _get(self, key: str) -> Any:
        return getattr(settings, "SIOLESS", {}).get(key, DEFAULTS[key])

    @functools.cached_property
    def PATH(self) -> str:
        """URL path of the endpoint, without slashes."""
        return str(self._get("PATH")).strip("/")

    @functools.cached_property
    def SHARDS(self) -> int:
        """How many worker channels the connections are spread over."""
        return int(self._get("SHARDS"))

    @functools.cached_property
    def PING_INTERVAL(self) -> float:
        """Seconds between two Engine.IO pings."""
        return float(self._get("PING_INTERVAL"))

    @functools.cached_property
    def PING_TIMEOUT(self) -> float:
        """Seconds a client has to answer a ping; it is closed at the first tick after."""
        return float(self._get("PING_TIMEOUT"))

    @functools.cached_property
    def MAX_PAYLOAD(self) -> int:
        """Largest frame, in bytes, a client may send."""
        return int(self._get("MAX_PAYLOAD"))

    @functools.cached_property
    def MAX_ATTACHMENTS(self) -> int:
        """Most binary attachments one Socket.IO packet may announce."""
        return int(self._get("MAX_ATTACHMENTS"))

    @functools.cached_property
    def MAX_IN_FLIGHT(self) -> int:
        """Most frames of one connection its worker has been handed and not yet handled."""
        return int(self._get("MAX_IN_FLIGHT"))

    @functools.cached_property
    def MAX_BUFFERED(self) -> int:
        """Bytes of frames a connection may have waiting beyond MAX_IN_FLIGHT before it is closed."""
        return int(self._get("MAX_BUFFERED"))

    @functools.cached_property
    def CHANNEL_LAYER(self) -> str:
        """Alias in ``CHANNEL_LAYERS`` that carries sioless' messages."""
        return str(self._get("CHANNEL_LAYER"))

    @functools.cached_property
    def EMBEDDED_WORKER(self) -> bool:
        """Run the socket worker inside the ASGI process (default: with the in-memory layer)."""
        value = self._get("EMBEDDED_WORKER")
        if value is None:
            layer = getattr(settings, "CHANNEL_LAYERS", {}).get(self.CHANNEL_LAYER, {})
            return str(layer.get("BACKEND", "")).endswith("InMemoryChannelLayer")
        return bool(value)

    @functools.cached_property
    def HANDLER_MODULES(self) -> list[str]:
        """Dotted module paths imported for their handlers, besides each app's ``sockets``."""
        return list(self._get("HANDLER_MODULES"))

    @functools.cached_property
    def CORS_ALLOWED_ORIGINS(self) -> list[str]:
        """Origins (``"https://example.com"``) whose pages may connect from another origin with the
        user's cookies; ``"*"``: every other origin, without them."""
        return list(self._get("CORS_ALLOWED_ORIGINS"))

    @functools.cached_property
    def CONNECT_TIMEOUT(self) -> float:
        """Seconds a connection has to connect a namespace before it is closed."""
        return float(self._get("CONNECT_TIMEOUT"))

    @functools.cached_property
    def UPGRADE_TIMEOUT(self) -> float:
        """Seconds a WebSocket opened to upgrade a polling session has to complete the upgrade."""
        return float(self._get("UPGRADE_TIMEOUT"))

    @functools.cached_property
    def MAX_NAMESPACES(self) -> int:
        """Most namespaces one connection may be connected to at once."""
        return int(self._get("MAX_NAMESPACES"))

    @functools.cached_property
    def MAX_NAME_LENGTH(self) -> int:
        """Longest namespace, event or room name, in characters."""
        return int(self._get("MAX_NAME_LENGTH"))

    @functools.cached_property
    def BINARY_TIMEOUT(self) -> float:
        """Seconds a client has to send every attachment of a binary packet it started."""
        return float(self._get("BINARY_TIMEOUT"))

    @functools.cached_property
    def SID_MAX_AGE(self) -> float:
        """Seconds a polling session's sid is accepted after it was issued."""
        return float(self._get("SID_MAX_AGE"))

    @functools.cached_property
    def PRIVATE_HEADERS(self) -> frozenset[str]:
        """Request headers (lower case) never written to the database; ``cookie`` is never kept at all."""
        return frozenset(name.lower() for name in self._get("PRIVATE_HEADERS"))

    @functools.cached_property
    def PRIVATE_QUERY_PARAMETERS(self) -> frozenset[str]:
        """Query parameters never written to the database."""
        return frozenset(self._get("PRIVATE_QUERY_PARAMETERS"))

    @functools.cached_property
    def KEEP_AUTH(self) -> bool:
        """Keep each socket's CONNECT ``auth`` in the database, encrypted with SECRET_KEY, so that a
        revived worker still has it; False: not kept (``socket.auth`` is ``{}`` after a revival)."""
        return bool(self._get("KEEP_AUTH"))

    @functools.cached_property
    def JSON_ENCODER(self) -> type[json.JSONEncoder]:
        """The ``json.JSONEncoder`` subclass (a dotted path) that encodes what is sent to clients."""
        return _import_encoder(str(self._get("JSON_ENCODER")))

    @functools.cached_property
    def PARSER(self) -> Parser:
        """The Socket.IO parser every client speaks: ``"default"`` (JSON text, binary attachments),
        ``"msgpack"`` (MessagePack, as socket.io-msgpack-parser), or a module's dotted path."""
        return parser_named(str(self._get("PARSER")))

    @functools.cached_property
    def CONNECTION_STATE_RECOVERY(self) -> bool:
        """Let a client whose connection was lost come back as the same socket (sid, rooms, data)
        and receive what was sent to it meanwhile (socket.io's connection state recovery)."""
        return bool(self._get("CONNECTION_STATE_RECOVERY"))

    @functools.cached_property
    def MAX_DISCONNECTION_DURATION(self) -> float:
        """Seconds a lost socket can be recovered; then its disconnect handler runs."""
        return float(self._get("MAX_DISCONNECTION_DURATION"))

    @functools.cached_property
    def RECOVERY_SKIPS_CONNECT_HANDLERS(self) -> bool:
        """A recovered socket skips the middlewares and the connect handler (Node's ``skipMiddlewares``)."""
        return bool(self._get("RECOVERY_SKIPS_CONNECT_HANDLERS"))

    @functools.cached_property
    def GC_THRESHOLD(self) -> tuple[int, ...] | None:
        """The cyclic garbage collector's thresholds (``gc.set_threshold``) of every process that
        loads sioless, set as Django starts; None: as the project leaves them."""
        value = self._get("GC_THRESHOLD")
        return None if value is None else tuple(value)


@functools.lru_cache(maxsize=8)
def _import_encoder(path: str) -> type[json.JSONEncoder]:
    encoder: type[json.JSONEncoder] = import_string(path)
    return encoder


conf = Settings()


@receiver(setting_changed)
def forget_values(*, setting: str, **named: Any) -> None:
    """Read the settings again once ``SIOLESS`` (or the channel layers it depends on) changed."""
    if setting in ("SIOLESS", "CHANNEL_LAYERS"):
        conf.__dict__.clear()
