"""Plain records the worker, the store and the server API share: what a client's handshake said,
a socket as the database keeps it. No I/O and no imports of the rest of sioless but settings."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .conf import conf

#: Seconds ``call`` waits for a client's acknowledgement unless told otherwise.
DEFAULT_CALL_TIMEOUT = 60.0
#: Most characters of headers, and of query, the database keeps of a handshake (a session's row,
#: and each suspended socket's): those past it are left out, in the order the client sent them.
MAX_RECORDED = 8192


@dataclass(frozen=True)
class Handshake:
    """What the client's HTTP upgrade request said (``cookie`` is left out).

    The database keeps it without ``PRIVATE_HEADERS`` and ``PRIVATE_QUERY_PARAMETERS``, and at
    most ``MAX_RECORDED`` characters of headers and of query (:meth:`to_record`): a socket revived
    from there no longer has what was left out.
    """

    query: dict[str, str]
    headers: dict[str, str]
    address: str
    url: str
    issued: float
    user_id: str | None = None

    def to_message(self) -> dict[str, Any]:
        """A form the channel layer can carry (which copies it: ``dataclasses.asdict``'s deep copy
        cost a twentieth of a connection in development)."""
        return dict(vars(self))

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Handshake:
        """The inverse of :meth:`to_message`."""
        return cls(**message)

    def to_record(self) -> dict[str, Any]:
        """What the database keeps: no credential headers, no secret query parameters, and no more
        than ``MAX_RECORDED`` characters of either."""
        query = _bounded(self.query, conf.PRIVATE_QUERY_PARAMETERS)
        path = self.url.partition("?")[0]
        return {
            **self.to_message(),
            "query": query,
            "headers": _bounded(self.headers, conf.PRIVATE_HEADERS),
            "url": f"{path}?{urlencode(query)}",
        }


def _bounded(fields: dict[str, str], private: Collection[str]) -> dict[str, str]:
    """``fields`` without the ``private`` ones, and without those past ``MAX_RECORDED`` characters
    in all (taken in order: one too long for what is left is left out, the next may fit)."""
    kept: dict[str, str] = {}
    room = MAX_RECORDED
    for name, value in fields.items():
        size = len(name) + len(value)
        if name not in private and size <= room:
            room -= size
            kept[name] = value
    return kept


@dataclass(frozen=True)
class StoredSocket:
    """A socket as the database holds it."""

    sid: str
    eio_sid: str
    namespace: str
    auth: Any
    data: dict[str, Any]
    rooms: frozenset[str]
    #: When it came into each room but its own (ms since the epoch; 0: not known).
    joined: dict[str, int] = field(default_factory=dict)
    handshake: dict[str, Any] = field(default_factory=dict)
    #: Whether ``auth`` is what the socket connected with: False when the database kept none
    #: (``KEEP_AUTH`` off) or it cannot be read (``SECRET_KEY`` changed); ``auth`` is ``{}`` then.
    auth_kept: bool = True
    #: Whether its connection moved from long-polling to WebSocket.
    upgraded: bool = False


@dataclass(frozen=True)
class StoredSession:
    """An engine session as the database holds it, with its sockets."""

    sid: str
    reply_channel: str
    handshake: dict[str, Any]
    upgraded: bool
    sockets: list[StoredSocket]
    #: With recovery on: the digest of each socket's pid, by sid.
    pid_digests: dict[str, str]
