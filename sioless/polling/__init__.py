"""HTTP long-polling, and its upgrade to WebSocket, with no sticky sessions.

A polling session is held by a :class:`PolledSession`: the engine consumer of
:mod:`sioless.consumers`, run in the process that answered the handshake, with the session's
HTTP requests as its transport. Those requests may land on any process: the sid names the
session's channel (:mod:`sioless.sids`), and a :class:`PollingConsumer` carries each request
there through the channel layer and the answer back. A GET waits there for packets, a POST
hands packets over. After an upgrade, an :class:`UpgradeConsumer` (the WebSocket, on any
process) relays the session's packets both ways instead.

One module a role: :mod:`.session` (the session's consumer), :mod:`.requests` (a request's
consumer), :mod:`.upgrade` (the upgrading WebSocket), :mod:`.cors` (CORS headers).
"""

from __future__ import annotations

from .cors import cors_headers
from .requests import PollingConsumer
from .session import PolledSession
from .upgrade import UpgradeConsumer

__all__ = ["PolledSession", "PollingConsumer", "UpgradeConsumer", "cors_headers"]
