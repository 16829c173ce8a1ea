"""URLs of the demo project."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from demo_project.chat import views

urlpatterns = [
    path("", views.index, name="index"),
    path("admin/", admin.site.urls),
    # the socket.io Admin UI (see chat/sockets.py for who may use it)
    path("admin-ui/", RedirectView.as_view(url="/static/admin-ui/index.html")),
]
