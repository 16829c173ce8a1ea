"""Session ids of long-polling sessions.

A polling session's requests may land on any server process, so its sid says which channel
holds the session: a random token, the channel (base64), and a signature, so that a client can
neither make up a channel nor route a request to one it was not given.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

from django.utils.crypto import salted_hmac

SALT = "sioless.sids"


def polling_sid(channel: str) -> str:
    """A new sid for the polling session held by ``channel``."""
    token = secrets.token_urlsafe(9)
    route = base64.urlsafe_b64encode(channel.encode()).decode("ascii").rstrip("=")
    return f"{token}.{route}.{_signature(token, route)}"


def session_channel(sid: str) -> str | None:
    """The channel holding polling session ``sid``; None unless this project issued ``sid``."""
    token, _, rest = sid.partition(".")
    route, _, signature = rest.partition(".")
    if not (token and route and signature) or not hmac.compare_digest(signature, _signature(token, route)):
        return None
    try:
        return base64.urlsafe_b64decode(route + "=" * (-len(route) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _signature(token: str, route: str) -> str:
    digest = salted_hmac(SALT, f"{token}.{route}", algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest[:12]).decode("ascii")
