"""Read-only admin views of the live state, with an action that disconnects sockets."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .models import EngineSession, NamespaceSocket, RoomMembership, ShardLease, SuspendedSocket
from .server import sio
from .sids import session_key


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
    exclude = ["handshake"]  # headers and query, however redacted: not for the admin's eyes
    list_display = ["sid", "shard", "user_id", "opened", "upgraded"]
    actions = None
    list_filter = ["shard"]
    search_fields = ["sid", "user_id", "sockets__sid"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[EngineSession], search_term: str
    ) -> tuple[QuerySet[EngineSession], bool]:
        """Who knows a polling session's sid finds it by the key it is stored under."""
        return super().get_search_results(request, queryset, session_key(search_term))


@admin.register(NamespaceSocket)
class NamespaceSocketAdmin(ReadOnlyAdmin):
    exclude = ["auth"]  # sealed, but a credential all the same
    list_display = ["sid", "namespace", "session", "connected"]
    search_fields = ["sid", "namespace", "session__sid", "session__user_id", "memberships__room"]
    actions = ["disconnect"]

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

    exclude = ["auth", "pid_digest"]
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
