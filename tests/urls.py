"""Views the tests call: emit from a view, and log a user in."""

import json

from django.contrib import admin
from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from sioless import sio


@csrf_exempt
def emit(request: HttpRequest) -> HttpResponse:
    """POST {"event", "args", "to", "namespace"}: emit it, as any view can."""
    body = json.loads(request.body)
    sio.emit(body["event"], *body.get("args", []), to=body.get("to"), namespace=body.get("namespace", "/"))
    return JsonResponse({"emitted": True})


def login_as(request: HttpRequest, username: str) -> HttpResponse:
    """Log ``username`` in (creating it), so a socket sees a Django user."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"user": username})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("emit/", emit),
    path("login/<str:username>/", login_as),
]
