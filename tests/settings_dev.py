"""Development-mode settings for tests: SQLite and the in-memory layer, one process."""

import os

from tests.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["SIOLESS_TEST_SQLITE"],
        "CONN_MAX_AGE": None,
    }
}
CHANNEL_LAYERS = {"default": {"BACKEND": "sioless.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10_000}}}
SIOLESS = {**SIOLESS, "SHARDS": 1}  # noqa: F405
