"""The ``SIOLESS`` settings dict: one typed property per key, read at access time."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "PATH": "socket.io",
    "SHARDS": 1,
    "PING_INTERVAL": 25.0,
    "PING_TIMEOUT": 30.0,
    "MAX_PAYLOAD": 1_000_000,
    "MAX_ATTACHMENTS": 10,
    "CHANNEL_LAYER": "default",
    "EMBEDDED_WORKER": None,
    "HANDLER_MODULES": [],
    "CORS_ALLOWED_ORIGINS": [],
}


class Settings:
    """Access to ``settings.SIOLESS`` with defaults, so ``override_settings`` works."""

    def _get(self, key: str) -> Any:
        return getattr(settings, "SIOLESS", {}).get(key, DEFAULTS[key])

    @property
    def PATH(self) -> str:
        """URL path of the endpoint, without slashes."""
        return str(self._get("PATH")).strip("/")

    @property
    def SHARDS(self) -> int:
        """How many worker channels the connections are spread over."""
        return int(self._get("SHARDS"))

    @property
    def PING_INTERVAL(self) -> float:
        """Seconds between two Engine.IO pings."""
        return float(self._get("PING_INTERVAL"))

    @property
    def PING_TIMEOUT(self) -> float:
        """Seconds a client has to answer a ping; it is closed at the first tick after."""
        return float(self._get("PING_TIMEOUT"))

    @property
    def MAX_PAYLOAD(self) -> int:
        """Largest frame, in bytes, a client may send."""
        return int(self._get("MAX_PAYLOAD"))

    @property
    def MAX_ATTACHMENTS(self) -> int:
        """Most binary attachments one Socket.IO packet may announce."""
        return int(self._get("MAX_ATTACHMENTS"))

    @property
    def CHANNEL_LAYER(self) -> str:
        """Alias in ``CHANNEL_LAYERS`` that carries sioless' messages."""
        return str(self._get("CHANNEL_LAYER"))

    @property
    def EMBEDDED_WORKER(self) -> bool:
        """Run the socket worker inside the ASGI process (default: with the in-memory layer)."""
        value = self._get("EMBEDDED_WORKER")
        if value is None:
            layer = getattr(settings, "CHANNEL_LAYERS", {}).get(self.CHANNEL_LAYER, {})
            return str(layer.get("BACKEND", "")).endswith("InMemoryChannelLayer")
        return bool(value)

    @property
    def HANDLER_MODULES(self) -> list[str]:
        """Dotted module paths imported for their handlers, besides each app's ``sockets``."""
        return list(self._get("HANDLER_MODULES"))

    @property
    def CORS_ALLOWED_ORIGINS(self) -> list[str]:
        """Origins (``"https://example.com"``, or ``"*"``) whose pages may poll from another origin."""
        return list(self._get("CORS_ALLOWED_ORIGINS"))


conf = Settings()
