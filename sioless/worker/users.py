"""The Django users of connections, loaded once a connection (or once a revived batch)."""

from __future__ import annotations

from typing import Any

from ..store import in_store_thread


async def load_users(user_ids: set[str | None]) -> dict[str | None, Any]:
    """Django users by id; ``None`` maps to the anonymous user (to nothing without django.contrib.auth)."""
    if not any(user_ids):
        return _get_users(user_ids)  # no database read: no thread hop on an anonymous connect
    return await in_store_thread(_get_users, user_ids)


def user_of(users: dict[str | None, Any], user_id: str | None) -> Any:
    """The user of ``user_id``; the anonymous user when it no longer exists."""
    return users.get(user_id, users.get(None))


def _get_users(user_ids: set[str | None]) -> dict[str | None, Any]:
    from django.apps import apps

    if not apps.is_installed("django.contrib.auth"):
        return {}
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser

    found: dict[str | None, Any] = {None: AnonymousUser()}
    ids = [user_id for user_id in user_ids if user_id is not None]
    if ids:
        for user in get_user_model()._default_manager.filter(pk__in=ids):
            found[str(user.pk)] = user
    return found
