"""System checks for the ``SIOLESS`` settings and the channel layer they rely on."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import DEFAULTS, conf

#: The channel layers that keep the packets connection state recovery sends again.
SIOLESS_LAYERS = ("sioless.layers.RedisChannelLayer", "sioless.layers.InMemoryChannelLayer")

_POSITIVE_NUMBERS = (
    "SHARDS",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "MAX_PAYLOAD",
    "MAX_ATTACHMENTS",
    "MAX_IN_FLIGHT",
    "MAX_BUFFERED",
    "MAX_NAMESPACES",
    "MAX_NAME_LENGTH",
    "BINARY_TIMEOUT",
    "SID_MAX_AGE",
    "CONNECT_TIMEOUT",
    "UPGRADE_TIMEOUT",
    "MAX_DISCONNECTION_DURATION",
)


@register(Tags.compatibility)
def check_settings(**kwargs: Any) -> list[CheckMessage]:
    """Report unknown keys and values of the wrong type in ``SIOLESS``."""
    raw = getattr(settings, "SIOLESS", {})
    if not isinstance(raw, dict):
        return [Error("SIOLESS must be a dict.", id="sioless.E001")]
    errors: list[CheckMessage] = []
    for key in sorted(set(raw) - set(DEFAULTS)):
        errors.append(Error(f"SIOLESS has an unknown key {key!r}.", id="sioless.E002"))
    for key in _POSITIVE_NUMBERS:
        value = raw.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            errors.append(Error(f"SIOLESS[{key!r}] must be a positive number.", id="sioless.E003"))
    if not isinstance(raw.get("PATH", ""), str):
        errors.append(Error("SIOLESS['PATH'] must be a string.", id="sioless.E004"))
    lists = (
        ("HANDLER_MODULES", "dotted paths"),
        ("CORS_ALLOWED_ORIGINS", "origins"),
        ("PRIVATE_HEADERS", "header names"),
        ("PRIVATE_QUERY_PARAMETERS", "query parameter names"),
    )
    for key, what in lists:
        values = raw.get(key, [])
        if not isinstance(values, (list, tuple)) or not all(isinstance(value, str) for value in values):
            errors.append(Error(f"SIOLESS[{key!r}] must be a list of {what}.", id="sioless.E005"))
    errors += check_json_encoder() + check_parser() + check_gc_threshold()
    if errors:
        return errors
    return (
        check_heartbeat() + check_channel_layer() + check_database_connections() + check_recovery() + check_admin_ui()
    )


def check_gc_threshold() -> list[CheckMessage]:
    """``GC_THRESHOLD``: None, or the three thresholds of ``gc.set_threshold``."""
    value = getattr(settings, "SIOLESS", {}).get("GC_THRESHOLD", DEFAULTS["GC_THRESHOLD"])
    if value is None or (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)
    ):
        return []
    return [Error("SIOLESS['GC_THRESHOLD'] must be None or three integers (gc.set_threshold's).", id="sioless.E011")]


def check_json_encoder() -> list[CheckMessage]:
    """Report a ``JSON_ENCODER`` that is not the dotted path of a ``json.JSONEncoder`` subclass."""
    try:
        encoder = conf.JSON_ENCODER
    except ImportError as exc:
        return [Error(f"SIOLESS['JSON_ENCODER'] cannot be imported: {exc}", id="sioless.E007")]
    if not (isinstance(encoder, type) and issubclass(encoder, json.JSONEncoder)):
        return [Error("SIOLESS['JSON_ENCODER'] must be a json.JSONEncoder subclass.", id="sioless.E007")]
    return []


def check_parser() -> list[CheckMessage]:
    """Report a ``PARSER`` that names no parser: not a built-in one, nor an importable module with
    a parser's functions."""
    try:
        parser = conf.PARSER
    except ImportError as exc:
        return [Error(f"SIOLESS['PARSER'] cannot be imported: {exc}", id="sioless.E009")]
    missing = [
        name for name in ("encode", "encode_event", "with_ack_id", "with_offset", "decode") if not hasattr(parser, name)
    ]
    if missing:
        return [Error(f"SIOLESS['PARSER'] has no {', '.join(missing)}.", id="sioless.E009")]
    return []


def check_heartbeat() -> list[CheckMessage]:
    """Report a production setup where nothing would run the heartbeat, or where django-q2 would
    cut its runs short."""
    from .tasks import TICKER_RUN

    if not apps.is_installed("django_q"):
        if conf.EMBEDDED_WORKER:
            return []
        return [
            Warning(
                "Nothing runs the sioless heartbeat: clients will time out and dead connections stay.",
                hint="Add 'django_q' to INSTALLED_APPS, run migrate, and run manage.py qcluster.",
                id="sioless.W001",
            )
        ]
    timeout = getattr(settings, "Q_CLUSTER", {}).get("timeout")
    if timeout is not None and timeout <= TICKER_RUN:
        return [
            Warning(
                f"Q_CLUSTER['timeout'] ({timeout} s) cuts short the heartbeat's runs of {TICKER_RUN:.0f} s.",
                hint=f"Set Q_CLUSTER['timeout'] above {TICKER_RUN:.0f} (and 'retry' above 'timeout').",
                id="sioless.W004",
            )
        ]
    return []


def check_database_connections() -> list[CheckMessage]:
    """Warn when every sync handler would open a database connection of its own."""
    databases = getattr(settings, "DATABASES", {})
    if any(database.get("CONN_MAX_AGE", 0) == 0 for database in databases.values()):
        return [
            Warning(
                "CONN_MAX_AGE is 0: the socket worker opens a database connection for every sync handler call.",
                hint="Set CONN_MAX_AGE (60, or None) and CONN_HEALTH_CHECKS = True in DATABASES.",
                id="sioless.W003",
            )
        ]
    return []


def check_channel_layer() -> list[CheckMessage]:
    """Report a missing channel layer, Channels' in-memory layer, and redis-py's idle timeout trap."""
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get(conf.CHANNEL_LAYER)
    if layer is None:
        return [Error(f"CHANNEL_LAYERS has no {conf.CHANNEL_LAYER!r} layer.", id="sioless.E006")]
    backend = str(layer.get("BACKEND", ""))
    if backend == "channels.layers.InMemoryChannelLayer":
        return [
            Warning(
                "Channels' InMemoryChannelLayer names every process alike: after a restart of the "
                "development server, the sessions of the one before are taken for its own.",
                hint="Use 'sioless.layers.InMemoryChannelLayer' (also cheaper per message).",
                id="sioless.W005",
            )
        ]
    if "channels_redis" not in backend and backend != "sioless.layers.RedisChannelLayer":
        return []
    hosts = layer.get("CONFIG", {}).get("hosts", [])
    if any(not isinstance(host, dict) or host.get("socket_timeout", 0) is not None for host in hosts):
        return [
            Warning(
                "channels-redis hosts should set 'socket_timeout': None.",
                hint=(
                    "redis-py 8 times out idle reads after 5 s, which closes idle WebSockets "
                    "and stops idle workers. Give each host as a dict: "
                    "{'address': 'redis://...', 'socket_timeout': None}."
                ),
                id="sioless.W002",
            )
        ]
    return []


def check_recovery() -> list[CheckMessage]:
    """Connection state recovery keeps its packets in sioless' own channel layers."""
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get(conf.CHANNEL_LAYER, {})
    backend = str(layer.get("BACKEND", ""))
    if conf.CONNECTION_STATE_RECOVERY and backend not in SIOLESS_LAYERS:
        return [
            Error(
                f"SIOLESS['CONNECTION_STATE_RECOVERY'] needs one of sioless' channel layers, not {backend!r}.",
                hint="Use 'sioless.layers.RedisChannelLayer' ('sioless.layers.InMemoryChannelLayer' in development).",
                id="sioless.E008",
            )
        ]
    return []


def check_admin_ui() -> list[CheckMessage]:
    """Refuse an Admin UI open to anyone (``sio.instrument(auth=False)``) outside DEBUG."""
    from .server import sio

    if sio.admin_ui is not None and sio.admin_ui.auth is False and not settings.DEBUG:
        return [Error("sio.instrument(auth=False) opens the Admin UI to anyone: only with DEBUG.", id="sioless.E010")]
    return []
