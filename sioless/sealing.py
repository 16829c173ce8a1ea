"""What the database keeps of a socket's CONNECT ``auth``: sealed with a key derived from
``SECRET_KEY`` (Fernet: AES and an HMAC), so a database dump or the admin shows no token."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.utils.crypto import salted_hmac

from .conf import conf

logger = logging.getLogger(__name__)

SALT = "sioless.sealing"


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(salted_hmac(SALT, "auth", algorithm="sha256").digest()))


def seal(auth: Any) -> str | None:
    """``auth`` as the database keeps it; None when ``KEEP_AUTH`` is off."""
    if not conf.KEEP_AUTH:
        return None
    return _fernet().encrypt(json.dumps(auth, separators=(",", ":")).encode()).decode("ascii")


#: What :func:`unseal` gives for a value that holds no readable ``auth``.
NOT_KEPT = object()


def unseal(sealed: Any) -> Any:
    """The ``auth`` a sealed value holds; :data:`NOT_KEPT` when nothing was kept or the key has changed."""
    if not isinstance(sealed, str):
        return NOT_KEPT
    try:
        return json.loads(_fernet().decrypt(sealed.encode("ascii")))
    except (InvalidToken, ValueError):
        logger.warning("a socket's auth cannot be read: SECRET_KEY changed since it was stored")
        return NOT_KEPT
