"""The demo's page."""

from django.http import HttpRequest, HttpResponse


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><title>sioless demo</title><h1>sioless demo</h1>")
