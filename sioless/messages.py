"""The channel-layer messages sioless sends, by ``type``, and who sends them where.

Consumer to its shard's worker channel (each carries ``eio`` and ``reply``)::

    sioless.open      a session starts; ``handshake``
    sioless.frame     one Socket.IO frame from the client; ``frame`` (str or bytes)
    sioless.close     the connection ended; ``reason``
    sioless.command   a forwarded command (below), now in the session's order
    sioless.sync      the frames sent so far, ahead of any frame sent later (answers ``resync``); ``sent``
    sioless.upgraded  a long-polling session moved to its WebSocket

Each ``sioless.frame`` carries ``seq``: the client frames the consumer has sent so far, itself
included. The worker reports back how far it has handled them (:mod:`sioless.flow`).

The heartbeat's ticker to a shard's worker channel::

    sioless.reap      close sessions of a server process that stopped answering ticks;
                      ``process``, ``shard``, ``sessions`` (their sids)

A worker recovering a socket to the worker of the session that still holds it (connection state
recovery), and the answer::

    sioless.hand_over   give up session ``eio`` unless its consumer answers a probe; ``reply``
    sioless.handed_over to ``reply``: ``gone``, whether the session is closed now

Worker to one consumer (its reply channel)::

    sioless.frames    Socket.IO frames for the client; ``frames``, ``handled`` (as below);
                      ``groups``: those of the socket a CONNECT among them connects, whose
                      broadcasts the consumer takes from then on; ``release`` (below), or
                      ``drop_held``: the log of a recovery refused, whose held broadcasts go
    sioless.credit    the client frames handled so far, ``handled``; or ``resync``: a revived
                      worker asks how many were sent (``probe``: answered only while the client
                      is there, for a hand-over)
    sioless.groups    groups the worker added the consumer to or removed it from; ``add``, ``discard``;
                      ``hold``: the log of a socket being recovered, whose broadcasts wait for
                      the ``sioless.frames`` with ``release`` (``[log, offset]``: what was sent
                      again goes up to ``offset``)
    sioless.close     the worker ended the session; ``reason``

Anywhere (worker, view, task) to a group of consumers::

    sioless.broadcast frames for the members; ``frames``, ``targets``, ``via``, ``skip``; with
                      recovery on, ``log`` and ``offset``: the event's place in the packet log
    sioless.command   ``op`` join/leave/disconnect/call for the member's socket in ``namespace``,
                      taken through the first of ``targets`` it is in (``via``, as a broadcast);
                      a call has ``event``, ``frames`` (no ack id), ``timeout``, ``answer_to``
    sioless.ping      the heartbeat's tick; ``tick`` (its number), ``reporter`` (the ticker's channel)

A worker to the channel of a server-level call (``sio.call``, ``sio.call_all``)::

    sioless.answer    a socket's acknowledgement: ``sid``, and ``value`` unless it timed out or
                      disconnected

The first consumer of a server process to see a tick, to the ticker's channel::

    sioless.alive     the process is alive; ``process``

A long-polling session's HTTP requests and upgrading WebSocket (any process) to the channel
holding the session (each carries ``sid``), and the answers::

    sioless.poll          a GET waits for packets; ``reply`` (the request's channel)
    sioless.post          packets from the client; ``frames``, ``reply`` (None from a WebSocket),
                          ``error`` (a disconnect reason: the request was refused, close the session)
    sioless.reply         to a request: ``frames`` (for a GET), ``ok``, or ``error`` (an Engine.IO
                          error code); ``timeout`` from the request to itself
    sioless.can_upgrade   a WebSocket asks whether it may upgrade the session; ``reply`` (its
                          channel), answered ``ok`` or ``error``
    sioless.probe         the WebSocket got the upgrade probe: release the waiting GET
    sioless.upgrade       the client switched to the WebSocket; ``relay`` (its channel)
    sioless.relay_frames  session to WebSocket: frames for the client; ``frames``
    sioless.relay_close   session to WebSocket: close the connection; ``code``
    sioless.relay_gone    WebSocket to session: the client closed it (or it went before the
                          upgrade it probed); ``relay``
    sioless.poll_gone     a GET's client went away before its answer; ``reply`` (the GET's channel)
"""

OPEN = "sioless.open"
FRAME = "sioless.frame"
CLOSE = "sioless.close"
COMMAND = "sioless.command"
SYNC = "sioless.sync"
UPGRADED = "sioless.upgraded"
CREDIT = "sioless.credit"
FRAMES = "sioless.frames"
GROUPS = "sioless.groups"
BROADCAST = "sioless.broadcast"
ANSWER = "sioless.answer"
PING = "sioless.ping"
REAP = "sioless.reap"
ALIVE = "sioless.alive"
POLL = "sioless.poll"
POST = "sioless.post"
REPLY = "sioless.reply"
CAN_UPGRADE = "sioless.can_upgrade"
PROBE = "sioless.probe"
UPGRADE = "sioless.upgrade"
RELAY_FRAMES = "sioless.relay_frames"
RELAY_CLOSE = "sioless.relay_close"
RELAY_GONE = "sioless.relay_gone"
POLL_GONE = "sioless.poll_gone"
HAND_OVER = "sioless.hand_over"
HANDED_OVER = "sioless.handed_over"
