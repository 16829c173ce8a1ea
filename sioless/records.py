"""Plain records the worker, the store and the server API share: what a client's handshake said,
a socket as the database keeps it. No I/O and no imports of the rest of sioless but settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .conf import conf

#: Seconds ``call`` waits for a client's acknowledgement unless told otherwise.
DEFAULT_CALL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Handshake:
    """What the client's HTTP upgrade request said (``cookie`` is left out).

    The database keeps it without ``PRIVATE_HEADERS`` and ``PRIVATE_QUERY_PARAMETERS``
    (:meth:`to_record`): a socket revived from there no longer has them.
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
        """What the database keeps: no credential headers, no secret query parameters."""
        private_headers, private_query = conf.PRIVATE_HEADERS, conf.PRIVATE_QUERY_PARAMETERS
        query = {key: value for key, value in self.query.items() if key not in private_query}
        path = self.url.partition("?")[0]
        return {
            **self.to_message(),
            "query": query,
            "headers": {name: value for name, value in self.headers.items() if name not in private_headers},
            "url": f"{path}?{urlencode(query)}",
        }


@dataclass(frozen=True)
class StoredSocket:
    """A socket as the database holds it."""

    sid: str
    eio_sid: str
    namespace: str
    auth: Any
    data: dict[str, Any]
    rooms: frozenset[str]
    handshake: dict[str, Any] = field(default_factory=dict)
    #: Whether ``auth`` is what the socket connected with: False when the database kept none
    #: (``KEEP_AUTH`` off) or it cannot be read (``SECRET_KEY`` changed); ``auth`` is ``{}`` then.
    auth_kept: bool = True


@dataclass(frozen=True)
class StoredSession:
    """An engine session as the database holds it, with its sockets."""

    sid: str
    reply_channel: str
    handshake: dict[str, Any]
    sockets: list[StoredSocket]
    #: With recovery on: the digest of each socket's pid, by sid.
    pid_digests: dict[str, str]
