"""The Django admin of the live state: sessions stored by key (a polling sid is a bearer token, never
stored) are found by their sid, and only who may delete sockets may disconnect them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from sioless.models import EngineSession, NamespaceSocket
from sioless.sids import polling_sid, session_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def polled() -> str:
    """A polling session's sid; its row and socket as a worker records them."""
    sid = polling_sid("specific.p1!c1")
    session = EngineSession.objects.create(
        sid=session_key(sid), shard=0, reply_channel="specific.p1!c1", process="specific.p1", handshake={}
    )
    NamespaceSocket.objects.create(sid="socket-1", session=session, namespace="/", namespace_group="ns")
    return sid


def test_who_knows_a_polling_sid_finds_its_session(admin_client: Client, polled: str) -> None:
    found = admin_client.get(reverse("admin:sioless_enginesession_changelist"), {"q": polled})
    assert found.context["cl"].result_count == 1
    assert admin_client.get(reverse("admin:sioless_namespacesocket_change", args=["socket-1"])).status_code == 200


def actions(client: Client) -> list[Any]:
    page = client.get(reverse("admin:sioless_namespacesocket_changelist"))
    assert page.status_code == 200
    form = page.context["action_form"]
    return [] if form is None else [choice for choice, _ in form.fields["action"].choices]


def test_only_who_may_delete_sockets_may_disconnect_them(
    admin_client: Client, client: Client, django_user_model: Any, polled: str
) -> None:
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_namespacesocket"))
    client.force_login(viewer)
    assert "disconnect" not in actions(client)
    assert "disconnect" in actions(admin_client)
