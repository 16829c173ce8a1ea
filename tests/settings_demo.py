"""The demo project as `make demo` runs it, on a database of the test's own."""

import os

from demo_project.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["SIOLESS_TEST_SQLITE"]}}
