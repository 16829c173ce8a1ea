"""The demo in the production topology (``python -m demo_project.production``): PostgreSQL, the
Redis channel layer, a qcluster for the heartbeat, a worker a shard, two daphne processes."""

import os

from django.core.exceptions import ImproperlyConfigured

from demo_project.settings import *  # noqa: F403

DEBUG = False
# Never the development settings' public key: polling sids and sealed auth are signed with it.
try:
    SECRET_KEY = os.environ["SIOLESS_DEMO_SECRET_KEY"]
except KeyError:
    raise ImproperlyConfigured(
        "Set SIOLESS_DEMO_SECRET_KEY (`python -m demo_project.production` makes one for each run)."
    ) from None
# daphne's app only makes runserver serve ASGI: without it, the workers and the qcluster do not
# import daphne's server (Twisted, TLS) either.
INSTALLED_APPS = [*(app for app in INSTALLED_APPS if app != "daphne"), "django_q"]  # noqa: F405

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": 5432,
        "USER": "postgres",
        "NAME": os.environ.get("SIOLESS_DEMO_DATABASE", "sioless_demo"),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}

PREFIX = os.environ.get("SIOLESS_DEMO_PREFIX", "sioless-demo")
REDIS = {"host": "127.0.0.1", "port": 6379, "db": 0}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "sioless.layers.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": None, "max_connections": 1000}],
            "prefix": PREFIX,
            "capacity": 5000,
        },
    }
}
Q_CLUSTER = {"name": PREFIX, "workers": 1, "timeout": 150, "retry": 200, "redis": REDIS}
SIOLESS = {"SHARDS": 2, "CONNECTION_STATE_RECOVERY": True}

# daphne serves the browser app itself here; put a web server or whitenoise in front in production.
DEMO_SERVES_STATIC_FILES = True
