"""Django signals of a socket's life, for a project's own bookkeeping (who is online, metrics, an
audit trail), sent by the worker that serves the socket.

Each is sent with ``sender`` the :class:`~sioless.socket.Socket` class and ``socket`` the socket,
once what it tells is written to the database (an event's, as it comes or goes), in the background:
a receiver never holds up the socket's packets, and runs as a handler does (an async receiver on
the worker's event loop, a sync one in the thread where sync handlers run). What a receiver raises
is logged, not raised.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A socket connected, its CONNECT sent (``socket.recovered``: it came back after a lost connection).
socket_connected = Signal()
#: A socket came back after a lost connection, as the socket it was (sent after ``socket_connected``).
socket_recovered = Signal()
#: A socket disconnected; ``reason`` says why, as its disconnect handler is told.
socket_disconnected = Signal()
#: A socket joined ``room`` (for the rooms joined as it connected, after ``socket_connected``; never
#: for the room of its own sid, which it is in from its start).
room_joined = Signal()
#: A socket left ``room``; sent for the rooms it leaves by disconnecting too.
room_left = Signal()
#: A socket's connection moved from HTTP long-polling to WebSocket (``transport``: ``"websocket"``).
socket_upgraded = Signal()
#: A socket's client sent ``event`` with ``args`` (every event, handled or not; Node's ``socket.onAny``).
event_received = Signal()
#: A socket sent its client ``event`` with ``args`` (as ``sio.on_any_outgoing`` hooks
#: are told: the socket's own emits and calls, not broadcasts nor acks).
event_sent = Signal()
