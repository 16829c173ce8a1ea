"""The channel-layer messages sioless sends, by ``type``, and who sends them where.

Consumer to its shard's worker channel (each carries ``eio`` and ``reply``)::

    sioless.open      a session starts; ``handshake``
    sioless.frame     one Socket.IO frame from the client; ``frame`` (str or bytes)
    sioless.close     the connection ended; ``reason``
    sioless.command   a forwarded command (below), now in the session's order

The heartbeat's ticker to a shard's worker channel::

    sioless.reap      close the sessions a server process that stopped answering ticks has
                      in the shard; ``process``, ``shard``

Worker to one consumer (its reply channel)::

    sioless.frames    Socket.IO frames for the client; ``frames``
    sioless.groups    groups the worker added the consumer to or removed it from; ``add``, ``discard``
    sioless.close     the worker ended the session; ``reason``

Anywhere (worker, view, task) to a group of consumers::

    sioless.broadcast frames for the members; ``frames``, ``targets``, ``via``, ``skip``
    sioless.command   ``op`` join/leave/disconnect for the member's socket in ``namespace``
    sioless.ping      the heartbeat's tick; ``tick`` (its number), ``reporter`` (the ticker's channel)

The first consumer of a server process to see a tick, to the ticker's channel::

    sioless.alive     the process is alive; ``process``
"""

OPEN = "sioless.open"
FRAME = "sioless.frame"
CLOSE = "sioless.close"
COMMAND = "sioless.command"
FRAMES = "sioless.frames"
GROUPS = "sioless.groups"
BROADCAST = "sioless.broadcast"
PING = "sioless.ping"
REAP = "sioless.reap"
ALIVE = "sioless.alive"
