"""The Django admin of the live state: a polling session's sid (a bearer token) is never shown
whole, and only who may delete sockets may disconnect them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from sioless.models import EngineSession, NamespaceSocket
from sioless.sids import polling_sid, redacted

pytestmark = pytest.mark.django_db


@pytest.fixture
def polled() -> EngineSession:
    """A polling session with a socket, as a worker records it."""
    sid = polling_sid("specific.p1!c1")
    session = EngineSession.objects.create(
        sid=sid, shard=0, reply_channel="specific.p1!c1", process="specific.p1", handshake={}
    )
    NamespaceSocket.objects.create(sid="socket-1", session=session, namespace="/", namespace_group="ns")
    return session


def test_the_admin_never_shows_a_polling_sid_whole(admin_client: Client, polled: EngineSession) -> None:
    assert redacted(polled.sid) != polled.sid
    pages = [  # those reached without knowing the sid (a session's own page has it in its address)
        reverse("admin:sioless_enginesession_changelist"),
        reverse("admin:sioless_namespacesocket_changelist"),
        reverse("admin:sioless_namespacesocket_change", args=["socket-1"]),
    ]
    for page in pages:
        content = admin_client.get(page).content.decode()
        assert polled.sid not in content and quote(polled.sid) not in content, page  # as text, or in a link
        assert redacted(polled.sid) in content, page
    found = admin_client.get(reverse("admin:sioless_enginesession_changelist"), {"q": polled.sid})
    assert redacted(polled.sid) in found.content.decode()  # who knows a sid finds its session


def actions(client: Client) -> list[Any]:
    page = client.get(reverse("admin:sioless_namespacesocket_changelist"))
    assert page.status_code == 200
    form = page.context["action_form"]
    return [] if form is None else [choice for choice, _ in form.fields["action"].choices]


def test_only_who_may_delete_sockets_may_disconnect_them(
    admin_client: Client, client: Client, django_user_model: Any, polled: EngineSession
) -> None:
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_namespacesocket"))
    client.force_login(viewer)
    assert "disconnect" not in actions(client)
    assert "disconnect" in actions(admin_client)
