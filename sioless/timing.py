"""The worker's clocks: how long leases last, how often it looks for overdue connections, how long
it waits for consumers. The heartbeat reads them too, so they live apart from the worker."""

from __future__ import annotations

#: Seconds a shard lease lasts unless renewed: a standby takes over a dead worker's shard within it.
LEASE_TTL = 10.0
#: Seconds between renewals of a held lease, and between a standby's attempts to take one.
LEASE_RENEW = 2.0
#: Seconds before a standby's first new attempt after a failed one (doubling up to LEASE_RENEW).
LEASE_POLL = 0.5
#: Seconds the handlers of events already taken get to finish when the worker stops.
STOP_GRACE = 30.0
#: Seconds a stopping worker lets a receive under way bring its message, before it cancels the
#: receive (channels-redis can lose a message whose receive is cancelled mid-way).
RECEIVE_GRACE = 1.0
#: Most seconds between two sweeps of a shard: connections past CONNECT_TIMEOUT or BINARY_TIMEOUT,
#: consumers that never answered a resync, groups Redis lost, suspended sockets expired.
SHARD_SWEEP_INTERVAL = 5.0
#: Seconds the consumer of a revived session has to answer the worker's resync before the session
#: is closed as a ghost (its consumer died without a word: a crash while Redis was away).
SYNC_GRACE = 15.0
#: Seconds the consumer of a session holding a socket that its client is recovering on a new
#: connection has to show that its client is still there, before the socket is handed over.
PROBE_GRACE = 2.0
#: Seconds a recovery waits for the worker of that session to answer (it may be restarting).
HAND_OVER_WAIT = PROBE_GRACE + 3.0
#: Seconds a worker about to serve a shard waits for the database to take its earlier changes
#: (it revives the shard from there); past it, it tries again later.
WRITES_CATCH_UP = 30.0
