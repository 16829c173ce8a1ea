"""ASGI entry point: Django for HTTP, sioless at /socket.io/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from sioless.routing import http_urlpatterns, websocket_urlpatterns  # noqa: E402

http_app = URLRouter([*http_urlpatterns, re_path(r"", django_asgi_app)])

application = ProtocolTypeRouter(
    {
        # runserver serves static files itself; daphne alone does not
        "http": ASGIStaticFilesHandler(http_app) if getattr(settings, "DEMO_SERVES_STATIC_FILES", False) else http_app,
        # sioless refuses pages of other origins (and of hosts outside ALLOWED_HOSTS) itself
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
