"""Views the tests call: emit from a view, and log a user in."""

import json

from django.contrib import admin
from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from sioless import AckTimeout, sio


@csrf_exempt
def emit(request: HttpRequest) -> HttpResponse:
    """POST {"event", "args", "to", "namespace"}: emit it, as any view can."""
    body = json.loads(request.body)
    sio.emit(body["event"], *body.get("args", []), to=body.get("to"), namespace=body.get("namespace", "/"))
    return JsonResponse({"emitted": True})


@csrf_exempt
def call(request: HttpRequest) -> HttpResponse:
    """POST {"event", "args", "to", "timeout"}: ask the sockets in ``to`` from a view; their answers
    by sid, and who did not answer in time."""
    body = json.loads(request.body)
    try:
        answers = sio.call_all(body["event"], *body.get("args", []), to=body["to"], timeout=body["timeout"])
        late = False
    except AckTimeout as exc:
        answers, late = exc.answers, True
    return JsonResponse({"answers": answers, "late": late})


def login_as(request: HttpRequest, username: str) -> HttpResponse:
    """Log ``username`` in (creating it), so a socket sees a Django user."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"user": username})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("emit/", emit),
    path("call/", call),
    path("login/<str:username>/", login_as),
]
