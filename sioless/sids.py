"""Session ids of long-polling sessions.

A polling session's requests may land on any server process, so its sid says which channel
holds the session: a random token, the channel (base64), when it was issued, and a signature, so
that a client can neither make up a channel nor route a request to one it was not given. A sid is
a bearer token: it is good for requests only while its session lives (nobody answers on a closed
session's channel) and for ``SID_MAX_AGE`` seconds at most.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import secrets
import time

from django.utils.crypto import salted_hmac

from .conf import conf

SALT = "sioless.sids"


def polling_sid(channel: str) -> str:
    """A new sid for the polling session held by ``channel``."""
    token = secrets.token_urlsafe(9)
    route = base64.urlsafe_b64encode(channel.encode()).decode("ascii").rstrip("=")
    issued = format(int(time.time()), "x")
    return f"{token}.{route}.{issued}.{_signature(token, route, issued)}"


def session_channel(sid: str) -> str | None:
    """The channel holding polling session ``sid``; None unless this project issued ``sid`` less
    than ``SID_MAX_AGE`` seconds ago."""
    parts = sid.split(".")
    if len(parts) != 4 or not sid.isascii():
        return None
    token, route, issued, signature = parts
    if not hmac.compare_digest(signature.encode(), _signature(token, route, issued).encode()):
        return None
    try:
        if time.time() - int(issued, 16) > conf.SID_MAX_AGE:
            return None
        return base64.urlsafe_b64decode(route + "=" * (-len(route) % 4)).decode()
    except (binascii.Error, ValueError):
        return None


def session_key(sid: str) -> str:
    """The name a session goes by beyond its consumer (in the worker, the database, the admin and
    logs): a polling sid without what makes it a bearer token (its route and signature), its random
    token telling sessions apart; a WebSocket session's sid, good for nothing but its one
    connection, whole."""
    return sid.partition(".")[0]


#: A sid in a request's query string, as a server's access log prints it.
_SID_IN_QUERY = re.compile(r"(?<=[?&]sid=)[^&\s]+")


class SessionKeysOnly(logging.Filter):
    """A filter for an ASGI server's access log (runserver's ``django.channels.server``): the sids
    in the requests it logs become session keys (a polling sid is a bearer token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict) and isinstance(path := record.args.get("path"), str):
            record.args = {**record.args, "path": _SID_IN_QUERY.sub(_key_of, path)}
        return True


def _key_of(found: re.Match[str]) -> str:
    return session_key(found[0])


def _signature(token: str, route: str, issued: str) -> str:
    digest = salted_hmac(SALT, f"{token}.{route}.{issued}", algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest[:12]).decode("ascii")
