"""Settings of the demo project: SQLite and the in-memory channel layer, one process."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "demo-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "sioless",
    "demo_project.chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
ASGI_APPLICATION = "demo_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "demo_client" / "app"],
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

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3", "CONN_MAX_AGE": None}}
CHANNEL_LAYERS = {"default": {"BACKEND": "sioless.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10_000}}}

SIOLESS = {"SHARDS": 1, "CONNECTION_STATE_RECOVERY": True}

STATIC_URL = "static/"
STATICFILES_DIRS = [
    ("demo", BASE_DIR / "demo_client" / "app"),
    # socket.io-client's browser build, installed by `make demo` (npm ci in demo_client/)
    ("vendor/socket.io-client", BASE_DIR / "demo_client" / "node_modules" / "socket.io-client" / "dist"),
    # the socket.io Admin UI's own build (the npm package's), at /admin-ui/
    ("admin-ui", BASE_DIR / "demo_client" / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"),
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
