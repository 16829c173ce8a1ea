"""Test settings: PostgreSQL and the Redis channel layer, as in production.

Every process of one test run (pytest, daphne, workers) shares the layer prefix
through the environment, so runs never see each other's messages.
"""

import os
import uuid

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.messages",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_q",
    "sioless",
    "tests.app",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "tests.urls"
ASGI_APPLICATION = "demo_project.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("SIOLESS_TEST_DB_HOST", "127.0.0.1"),
        "PORT": int(os.environ.get("SIOLESS_TEST_DB_PORT", "5432")),
        "USER": os.environ.get("SIOLESS_TEST_DB_USER", "postgres"),
        "NAME": os.environ.get("SIOLESS_TEST_DB_NAME", "test"),
        "TEST": {"NAME": os.environ.get("SIOLESS_TEST_DB_NAME", f"test_sioless_{os.getpid()}")},
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}

#: The machine's Redis; tests that break Redis start their own (several: the layer's hosts).
REDIS_PORTS = [int(port) for port in os.environ.get("SIOLESS_TEST_REDIS_PORT", "6379").split(",")]
REDIS_PORT = REDIS_PORTS[0]
LAYER_PREFIX = os.environ.setdefault("SIOLESS_TEST_LAYER_PREFIX", f"siotest-{uuid.uuid4().hex[:10]}")
#: "host:port" of the Redis Sentinels (comma-separated) watching the master "sioless": the layer
#: asks them where Redis is.
SENTINEL = os.environ.get("SIOLESS_TEST_REDIS_SENTINEL")
REDIS_HOSTS: list[dict[str, object]] = (
    [
        {
            "sentinels": [(host, int(port)) for host, port in (one.split(":") for one in SENTINEL.split(","))],
            "master_name": "sioless",
        }
    ]
    if SENTINEL
    else [{"address": f"redis://127.0.0.1:{port}/0"} for port in REDIS_PORTS]
)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": os.environ.get("SIOLESS_TEST_LAYER_BACKEND", "sioless.layers.RedisChannelLayer"),
        "CONFIG": {
            "hosts": [{**host, "socket_timeout": None, "max_connections": 1000} for host in REDIS_HOSTS],
            "prefix": LAYER_PREFIX,
            "capacity": 5_000,
            "expiry": int(os.environ.get("SIOLESS_TEST_LAYER_EXPIRY", "60")),
            "group_expiry": int(os.environ.get("SIOLESS_TEST_GROUP_EXPIRY", "86400")),
        },
    }
}

Q_CLUSTER = {
    "name": LAYER_PREFIX,  # the broker's queue: one a test run, like the layer's keys
    "workers": 1,  # the heartbeat needs one (as the README recipe has it)
    "timeout": 150,
    "retry": 200,
    "redis": {"host": "127.0.0.1", "port": REDIS_PORT, "db": 0},
}
if SENTINEL:  # the broker must survive the failover too: the database
    Q_CLUSTER = {**Q_CLUSTER, "orm": "default"}
    del Q_CLUSTER["redis"]

SIOLESS = {
    "SHARDS": int(os.environ.get("SIOLESS_TEST_SHARDS", "2")),
    "PING_INTERVAL": float(os.environ.get("SIOLESS_TEST_PING_INTERVAL", "25")),
    "PING_TIMEOUT": float(os.environ.get("SIOLESS_TEST_PING_TIMEOUT", "30")),
    "MAX_PAYLOAD": 100_000,
    "HANDLER_MODULES": ["tests.handlers"],
    "CORS_ALLOWED_ORIGINS": ["http://allowed.example"],
    "BINARY_TIMEOUT": 3.0,
    "CONNECT_TIMEOUT": float(os.environ.get("SIOLESS_TEST_CONNECT_TIMEOUT", "45")),
    "UPGRADE_TIMEOUT": float(os.environ.get("SIOLESS_TEST_UPGRADE_TIMEOUT", "10")),
    "CONNECTION_STATE_RECOVERY": bool(os.environ.get("SIOLESS_TEST_RECOVERY")),
    "PARSER": os.environ.get("SIOLESS_TEST_PARSER", "default"),
    "MAX_DISCONNECTION_DURATION": float(os.environ.get("SIOLESS_TEST_MAX_DISCONNECTION", "120")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"timed": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "timed"}},
    "loggers": {
        "sioless": {"handlers": ["console"], "level": os.environ.get("SIOLESS_TEST_LOG_LEVEL", "WARNING")},
        "django-q": {"handlers": ["console"], "level": os.environ.get("SIOLESS_TEST_Q_LOG_LEVEL", "WARNING")},
    },
}
if os.environ.get("SIOLESS_TEST_DEFAULT_LOGGING"):  # Django's own logging, as a new project has
    del LOGGING
