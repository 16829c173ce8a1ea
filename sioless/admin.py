"""Read-only admin views of the live state, with an action that disconnects sockets."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .models import EngineSession, NamespaceSocket, RoomMembership, ShardLease, SuspendedSocket
from .server import sio
from .sids import redacted


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The workers own these rows: the admin only looks."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(EngineSession)
class EngineSessionAdmin(ReadOnlyAdmin):
    # a polling session's sid is a bearer token: shown redacted (a search for a known one finds it);
    # headers and query, however redacted: not for the admin's eyes
    exclude = ["sid", "handshake"]
    readonly_fields = ["session"]
    list_display = ["session", "shard", "user_id", "opened"]
    list_display_links = None  # a link's URL holds the sid
    actions = None
    list_filter = ["shard"]
    search_fields = ["sid", "user_id", "sockets__sid"]

    @admin.display(description="sid")
    def session(self, session: EngineSession) -> str:
        return redacted(session.sid)


@admin.register(NamespaceSocket)
class NamespaceSocketAdmin(ReadOnlyAdmin):
    exclude = ["auth", "session"]  # auth: sealed, but a credential all the same; session: its link holds the sid
    readonly_fields = ["engine_session"]
    list_display = ["sid", "namespace", "engine_session", "connected"]
    search_fields = ["sid", "namespace", "session__sid", "session__user_id", "memberships__room"]
    actions = ["disconnect"]

    @admin.display(description="engine session")
    def engine_session(self, socket: NamespaceSocket) -> str:
        return redacted(socket.session_id)

    def has_disconnect_permission(self, request: HttpRequest) -> bool:
        """Disconnecting ends sockets: it takes the permission to delete them, not only to view them."""
        return request.user.has_perm("sioless.delete_namespacesocket")

    @admin.action(description="Disconnect the selected sockets", permissions=["disconnect"])
    def disconnect(self, request: HttpRequest, queryset: QuerySet[NamespaceSocket]) -> None:
        """Disconnect through the channel layer; the sockets' workers do it and update these rows."""
        sockets = list(queryset)
        for socket in sockets:
            sio.disconnect(socket.sid, socket.namespace)
        self.message_user(request, f"Asked {len(sockets)} sockets to disconnect.", messages.SUCCESS)


@admin.register(RoomMembership)
class RoomMembershipAdmin(ReadOnlyAdmin):
    list_display = ["room", "namespace", "socket"]
    search_fields = ["room", "socket__sid", "socket__session__user_id"]


@admin.register(SuspendedSocket)
class SuspendedSocketAdmin(ReadOnlyAdmin):
    """Sockets whose connection was lost, waiting for their client to recover them."""

    exclude = ["auth", "handshake", "pid_digest"]
    list_display = ["sid", "namespace", "reason", "suspended"]
    search_fields = ["sid", "namespace"]


@admin.register(ShardLease)
class ShardLeaseAdmin(ReadOnlyAdmin):
    """Which worker serves each shard: a shard whose lease has run out is served by no one (its
    worker logs why: it cannot reach Redis or the database, or it stopped)."""

    list_display = ["shard", "holder", "expires", "served"]

    @admin.display(boolean=True, description="served now")
    def served(self, lease: ShardLease) -> bool:
        return lease.expires > timezone.now()
