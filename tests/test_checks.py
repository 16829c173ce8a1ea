"""System checks of the SIOLESS settings and the channel layer."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from django.apps import apps
from django.core.checks import CheckMessage
from pytest_django.fixtures import Settings

from sioless.checks import check_settings
from sioless.conf import conf

REDIS = "channels_redis.core.RedisChannelLayer"


def ids(messages: list[CheckMessage]) -> list[str]:
    return [message.id or "" for message in messages]


def test_the_test_settings_pass() -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    ("sioless", "expected"),
    [
        ([], ["sioless.E001"]),
        ({"PING_INTREVAL": 5}, ["sioless.E002"]),
        ({"SHARDS": 0}, ["sioless.E003"]),
        ({"MAX_PAYLOAD": "big"}, ["sioless.E003"]),
        ({"SHARDS": True}, ["sioless.E003"]),
        ({"PATH": 5}, ["sioless.E004"]),
        ({"HANDLER_MODULES": "app.sockets"}, ["sioless.E005"]),
        ({"CORS_ALLOWED_ORIGINS": "*"}, ["sioless.E005"]),
        ({"CORS_ALLOWED_ORIGINS": [None]}, ["sioless.E005"]),
        ({"CHANNEL_LAYER": "missing"}, ["sioless.E006"]),
        ({"JSON_ENCODER": "no.such.Encoder"}, ["sioless.E007"]),
        ({"JSON_ENCODER": "json.dumps"}, ["sioless.E007"]),
        ({"PARSER": "no.such.parser"}, ["sioless.E009"]),
        ({"PARSER": "json"}, ["sioless.E009"]),
        ({"GC_THRESHOLD": 10_000}, ["sioless.E011"]),
        ({"GC_THRESHOLD": (10_000, 10)}, ["sioless.E011"]),
        ({"GC_THRESHOLD": (10_000, -1, 10)}, ["sioless.E011"]),
    ],
)
def test_bad_settings_are_reported(settings: Settings, sioless: Any, expected: list[str]) -> None:
    settings.SIOLESS = sioless
    assert ids(check_settings()) == expected


def test_a_production_setup_without_django_q_is_warned(settings: Settings) -> None:
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "django_q"]
    assert ids(check_settings()) == ["sioless.W001"]
    settings.SIOLESS = {**settings.SIOLESS, "EMBEDDED_WORKER": True}
    assert ids(check_settings()) == []


def test_a_qcluster_timeout_that_cuts_the_heartbeat_short_is_warned(settings: Settings) -> None:
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60}
    assert ids(check_settings()) == ["sioless.W004"]


@pytest.mark.parametrize("backend", [REDIS, "sioless.layers.RedisChannelLayer"])
@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        (["redis://127.0.0.1:6379"], ["sioless.W002"]),
        ([{"address": "redis://127.0.0.1:6379"}], ["sioless.W002"]),
        ([{"address": "redis://127.0.0.1:6379", "socket_timeout": None}], []),
    ],
)
def test_redis_hosts_without_socket_timeout_none_are_warned(
    settings: Settings, backend: str, hosts: list[Any], expected: list[str]
) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend, "CONFIG": {"hosts": hosts}}}
    assert ids(check_settings()) == expected


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_a_connection_per_handler_call_is_warned(settings: Settings) -> None:
    settings.DATABASES = {**settings.DATABASES, "other": {"ENGINE": "django.db.backends.sqlite3"}}
    assert ids(check_settings()) == ["sioless.W003"]


def test_settings_are_read_at_access_time(settings: Settings) -> None:
    settings.SIOLESS = {"PATH": "/rt/", "PING_INTERVAL": 3}
    assert (conf.PATH, conf.PING_INTERVAL, conf.PING_TIMEOUT) == ("rt", 3.0, 30.0)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert conf.EMBEDDED_WORKER is True
    settings.SIOLESS = {"EMBEDDED_WORKER": False}
    assert conf.EMBEDDED_WORKER is False


def test_recovery_needs_a_layer_that_keeps_its_packets(settings: Settings) -> None:
    settings.SIOLESS = {"CONNECTION_STATE_RECOVERY": True}
    assert check_settings() == []
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": REDIS, "CONFIG": {"hosts": [{"socket_timeout": None}]}}}
    assert ids(check_settings()) == ["sioless.E008"]
    settings.SIOLESS = {"CONNECTION_STATE_RECOVERY": True, "MAX_DISCONNECTION_DURATION": 0}
    assert ids(check_settings()) == ["sioless.E003"]


def test_a_setting_is_read_again_once_changed(settings: Settings) -> None:
    """``conf`` keeps what it read (a packet reads several settings) until a setting changes."""
    settings.SIOLESS = {**settings.SIOLESS, "MAX_PAYLOAD": 1234}
    assert conf.MAX_PAYLOAD == 1234
    settings.SIOLESS = {**settings.SIOLESS, "MAX_PAYLOAD": 4321}
    assert conf.MAX_PAYLOAD == 4321
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "sioless.layers.InMemoryChannelLayer"}}
    settings.SIOLESS = {key: value for key, value in settings.SIOLESS.items() if key != "EMBEDDED_WORKER"}
    assert conf.EMBEDDED_WORKER is True
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": REDIS}}
    assert conf.EMBEDDED_WORKER is False  # read from the channel layers, which changed


@pytest.mark.parametrize("threshold", [(5_000, 20, 30), None])
def test_django_starting_sets_the_collector_s_thresholds(settings: Settings, threshold: Any) -> None:
    """As Django starts (the app's ``ready``), each process gets ``GC_THRESHOLD``, or keeps its own."""
    kept = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        settings.SIOLESS = {"GC_THRESHOLD": threshold}
        apps.get_app_config("sioless").ready()
        assert gc.get_threshold() == (threshold or (700, 10, 10))
    finally:
        gc.set_threshold(*kept)
