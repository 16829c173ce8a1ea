"""CONNECT packets that recover a socket (connection state recovery): the suspended socket claimed
from the database, or handed over by the worker of a connection its client left; what it missed
sent again. Also the other side of a hand-over: a connection asked whether its client is there."""

from __future__ import annotations

import asyncio
import logging
import time

from channels.layers import BaseChannelLayer

from .. import messages, store
from ..conf import conf
from ..names import namespace_group, room_group, shard_of, worker_channel
from ..reasons import DisconnectReason
from ..records import StoredSocket
from ..recovery import digest, offset_key, packet_log
from ..socket import Socket
from ..store import in_store_thread
from ..timing import HAND_OVER_WAIT, PROBE_GRACE
from .connect import Connector
from .connections import Connection, Connections, take_record
from .expiry import Expiry
from .lifecycle import Lifecycle
from .users import load_users

logger = logging.getLogger(__name__)

#: Most recoveries of one pid a worker attempts a minute; past it, the pid's client starts afresh
#: (a client looping connect, drop, recover would have the log read again and again).
RECOVERIES_PER_MINUTE = 10
#: Seconds by which the clocks of server processes and Redis may differ: a replay starts this long
#: before the socket's connection opened, never earlier.
CLOCK_SLACK = 5.0


class Recovering:
    """Recovers sockets, and answers hand-overs asked by other recoveries."""

    def __init__(self, connections: Connections, life: Lifecycle, connector: Connector, expiry: Expiry) -> None:
        self.connections = connections
        self.life = life
        self.outbound = life.outbound
        self.connector = connector
        self.expiry = expiry
        #: The last minute's recovery attempts of each pid, by its digest (monotonic seconds).
        self._attempts: dict[str, list[float]] = {}

    @property
    def layer(self) -> BaseChannelLayer:
        return self.outbound.layer

    async def recover_or_connect(self, conn: Connection, socket: Socket, pid: str, offset: str) -> None:
        """Make ``socket`` the suspended socket of ``pid`` again, sent what it missed after
        ``offset``; a new socket if there is none to recover, it missed more than the log gives
        back (socket.io's rules; the one it missed is ended then), or it was another user's (it
        stays suspended for its own). The recovered socket keeps what the server stored, never
        what the client sends: without a stored ``auth``, its connect steps run on the client's."""
        pid_digest = digest(pid)
        if not self._may_attempt(pid_digest):
            logger.warning(
                "a pid was recovered over %d times in a minute: its client starts afresh", RECOVERIES_PER_MINUTE
            )
            await self.connector.connect_afresh(conn, socket)
            return
        claimed = await self._claim(conn, socket.namespace, pid_digest, offset)
        if claimed is None:
            await self.connector.connect_afresh(conn, socket)
            return
        stored, reason = claimed
        if stored.handshake.get("user_id") != conn.handshake.user_id:
            logger.info("socket %s of %s is another user's: not recovered", stored.sid, socket.namespace)
            await self.life.writes.write(store.suspend_socket, stored, pid_digest, reason)
            await self.connector.connect_afresh(conn, socket)
            return
        try:
            await self._recover(conn, socket, stored, reason, pid, pid_digest, offset)
        except Exception:
            logger.exception("socket %s of %s could not be recovered: it stays suspended", stored.sid, socket.namespace)
            await self.life.writes.write(store.suspend_socket, stored, pid_digest, reason)
            if conn.sockets.get(socket.namespace) is socket:
                socket.connected = False  # its disconnect handler runs when it expires, not now
                await self.life.remove(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, tell_client=True)
                held = namespace_group(socket.namespace)  # if it came as far as holding broadcasts
                await self.connector.refuse(conn, socket.namespace, "Internal server error", drop_held=held)

    async def _recover(
        self,
        conn: Connection,
        socket: Socket,
        stored: StoredSocket,
        reason: str,
        pid: str,
        pid_digest: str,
        offset: str,
    ) -> None:
        """Recover a claimed socket: what it missed is read, sent again, and followed by what its
        consumer held meanwhile."""
        log = packet_log(self.layer)
        joined = _joined(socket.namespace, stored)
        found = await log.missed(socket.namespace, _replay_start(offset, stored), joined)
        if found is None:
            logger.info("socket %s of %s missed too much to be recovered: it ends", stored.sid, socket.namespace)
            self.expiry.end(stored, reason, await load_users({stored.handshake.get("user_id")}))
            await self.connector.connect_afresh(conn, socket)
            return
        if conn.sockets.get(socket.namespace) is not socket:  # this connection was lost meanwhile too
            await self.life.writes.write(
                store.suspend_socket, stored, pid_digest, str(DisconnectReason.TRANSPORT_CLOSE)
            )
            return
        take_record(socket, stored)
        socket.pid, socket.pid_digest, socket.recovered = pid, pid_digest, True
        restored = conf.RECOVERY_SKIPS_CONNECT_HANDLERS and stored.auth_kept
        if restored:  # as its connect steps left it; else they run again, on what the client sends now
            socket.auth = stored.auth
        # the consumer holds the broadcasts from now until the missed events are sent; what was
        # logged since the first read is read now (a moment's worth: no bound)
        log_name = namespace_group(socket.namespace)
        await self.outbound.hold_for_recovery(conn, list(joined), log_name)
        missed, read_up_to = found
        since = await log.missed(socket.namespace, read_up_to, joined, bounded=False)
        assert since is not None  # only the bound gives None
        missed, last = [*missed, *since[0]], since[1]
        logger.info("socket %s of %s recovered, %d events sent again", socket.sid, socket.namespace, len(missed))
        replay = [frame for entry in missed for frame in entry.sent_frames()]
        await self.connector.run_connect(conn, socket, steps=not restored, replay=replay, release=[log_name, last])

    def _may_attempt(self, pid_digest: str) -> bool:
        """Count a recovery of a pid; whether it is within RECOVERIES_PER_MINUTE."""
        now = time.monotonic()
        if len(self._attempts) > 10_000:  # forget the pids of the last minute no more
            self._attempts = {pid: tried for pid, tried in self._attempts.items() if now - tried[-1] < 60}
        attempts = [at for at in self._attempts.get(pid_digest, []) if now - at < 60]
        attempts.append(now)
        self._attempts[pid_digest] = attempts
        return len(attempts) <= RECOVERIES_PER_MINUTE

    async def _claim(
        self, conn: Connection, namespace: str, pid_digest: str, offset: str
    ) -> tuple[StoredSocket, str] | None:
        """Take the suspended socket of a pid out of the database, with why it was lost; a connected
        one is handed over first if its consumer does not show its client is still there (the client
        is back on a new connection: the old one's server process died, or has not noticed the loss
        yet). None for an offset that recovers nothing."""
        if not await packet_log(self.layer).recovers(namespace, offset):
            return None  # a made-up offset: what the socket missed is not known
        max_age = conf.MAX_DISCONNECTION_DURATION
        claimed = await in_store_thread(store.claim_suspended, pid_digest, namespace, max_age)
        if claimed is not None:
            return claimed
        holder = await in_store_thread(store.live_session_of, pid_digest, namespace)
        if holder is None or holder == conn.eio_sid or not await self._ask_hand_over(holder):
            return None
        return await in_store_thread(store.claim_suspended, pid_digest, namespace, max_age)

    async def _ask_hand_over(self, eio_sid: str) -> bool:
        """Ask the worker of connection ``eio_sid`` to close it unless its client is there; whether it is closed."""
        answer_to = await self.layer.new_channel()
        worker = worker_channel(shard_of(eio_sid, conf.SHARDS))
        await self.outbound.send(worker, {"type": messages.HAND_OVER, "eio": eio_sid, "reply": answer_to})
        try:
            answer = await asyncio.wait_for(self.layer.receive(answer_to), HAND_OVER_WAIT)
        except TimeoutError:
            logger.warning("the worker of session %s did not answer a hand-over", eio_sid)
            return False
        return bool(answer["gone"])

    async def hand_over(self, eio_sid: str, answer_to: str) -> None:
        """A client recovers a socket of connection ``eio_sid`` on a new connection: close it (its
        sockets suspended) unless its consumer shows within PROBE_GRACE that its client is there."""
        conn = self.connections.get(eio_sid)
        if conn is not None and not await self._client_answers(conn):
            logger.info("session %s: its client is back on a new connection, its sockets are handed over", eio_sid)
            await self.life.close(conn, DisconnectReason.TRANSPORT_CLOSE, tell_client=True)
        gone = eio_sid not in self.connections
        await self.outbound.send(answer_to, {"type": messages.HANDED_OVER, "gone": gone})

    async def _client_answers(self, conn: Connection) -> bool:
        """Whether the connection's consumer answers a probe (it does only while its client is
        there); hand-overs asked at once share one probe."""
        probe = conn.probe
        if probe is None or probe.done():
            probe = conn.probe = asyncio.get_running_loop().create_future()
            await self.outbound.resync(conn, probe=True)
        try:
            await asyncio.wait_for(asyncio.shield(probe), PROBE_GRACE)
        except TimeoutError:
            return False
        finally:
            if conn.probe is probe and not probe.done():
                conn.probe = None
        return True


def _opened(stored: StoredSocket) -> int:
    """When (ms since the epoch) a socket's connection opened, less CLOCK_SLACK (the consumer's
    clock against the log's)."""
    return max(0, int((float(stored.handshake.get("issued", 0)) - CLOCK_SLACK) * 1000))


def _replay_start(offset: str, stored: StoredSocket) -> str:
    """Where a replay starts: after the client's offset, but not before the socket's connection
    opened: what was sent before that was never this socket's to miss."""
    opened = _opened(stored)
    return offset if offset_key(offset) >= (opened, 0) else f"{opened}-0"


def _joined(namespace: str, stored: StoredSocket) -> dict[str, int]:
    """The groups a socket was in, each with since when (ms): its namespace's and its own room's
    since its connection opened, another room's since it joined it (what a room was sent before
    that was never this socket's to miss)."""
    opened = _opened(stored)
    rooms = {room_group(namespace, room): max(opened, stored.joined.get(room, 0)) for room in stored.rooms}
    return {namespace_group(namespace): opened, **rooms}
