"""Reads and writes of the worker's state in the database, in a thread of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from .fields import EncodedJSON
from .models import (
    EngineSession,
    Heartbeat,
    LostSession,
    NamespaceSocket,
    RoomMembership,
    ServerProcess,
    ShardLease,
    SuspendedSocket,
)
from .names import SID_SHAPE, namespace_group, process_of, room_group
from .records import StoredSession, StoredSocket
from .sealing import NOT_KEPT, seal, unseal

T = TypeVar("T")

#: One thread for every read and write of the worker's state: they happen in
#: order, and never wait behind the user's sync handlers in Django's thread.
_STORE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sioless-store")


async def in_store_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a function of this module in the store's thread.

    The thread keeps its database connection (connecting per write would cost
    more than the write); a database error closes it, so the next call connects
    afresh.
    """

    def run() -> T:
        try:
            return function(*args)
        except DatabaseError:
            connection.close()
            raise

    return await asyncio.get_running_loop().run_in_executor(_STORE_THREAD, run)


@dataclass(frozen=True)
class NewSession:
    """An engine session whose row is written with its first socket's."""

    shard: int
    reply_channel: str
    handshake: dict[str, Any]
    upgraded: bool = False


def mark_upgraded(sid: str) -> None:
    """Note that an engine session moved from long-polling to WebSocket."""
    EngineSession.objects.filter(sid=sid).update(upgraded=True)


def delete_session(sid: str) -> None:
    """Forget an engine session with its sockets and their rooms."""
    EngineSession.objects.filter(sid=sid).delete()


def delete_sessions(sids: list[str]) -> None:
    """Forget engine sessions whose server process is gone."""
    EngineSession.objects.filter(sid__in=sids).delete()


@dataclass(frozen=True)
class NewSocket:
    """A socket whose connect handler accepted it (or recovered), as it is recorded."""

    eio_sid: str
    sid: str
    namespace: str
    auth: Any
    #: Its ``data``, encoded by the worker (where a value it cannot encode is caught).
    data: EncodedJSON
    rooms: set[str]
    #: When it came into each room (ms since the epoch).
    joined: dict[str, int] = field(default_factory=dict)
    pid_digest: str | None = None
    #: Its engine session, when the session's row is written with it.
    new_session: NewSession | None = None


def save_sockets(*sockets: NewSocket) -> None:
    """Record sockets with their rooms (each one's ``auth`` sealed, or not kept:
    :mod:`sioless.sealing`), and the engine sessions new with them: an insert a table, however
    many sockets (a burst of connections)."""
    with transaction.atomic(savepoint=False):  # no savepoint in a batch of writes: one round trip less
        EngineSession.objects.bulk_create(
            EngineSession(
                sid=socket.eio_sid,
                shard=new.shard,
                reply_channel=new.reply_channel,
                process=process_of(new.reply_channel),
                handshake=new.handshake,
                user_id=new.handshake.get("user_id"),
                upgraded=new.upgraded,
            )
            for socket in sockets
            if (new := socket.new_session) is not None
        )
        NamespaceSocket.objects.bulk_create(
            NamespaceSocket(
                sid=socket.sid,
                session_id=socket.eio_sid,
                namespace=socket.namespace,
                namespace_group=namespace_group(socket.namespace),
                auth=seal(socket.auth),
                data=socket.data,
                pid_digest=socket.pid_digest,
            )
            for socket in sockets
        )
        RoomMembership.objects.bulk_create(
            _membership(socket.sid, socket.namespace, room, socket.joined.get(room, 0))
            for socket in sockets
            for room in socket.rooms
            if room != socket.sid
        )


def delete_socket(sid: str) -> None:
    """Forget a socket and its rooms."""
    NamespaceSocket.objects.filter(sid=sid).delete()


def _membership(sid: str, namespace: str, room: str, joined: int) -> RoomMembership:
    return RoomMembership(
        socket_id=sid, namespace=namespace, room=room, group=room_group(namespace, room), joined=joined
    )


def add_membership(sid: str, namespace: str, room: str, joined: int) -> None:
    """Record that socket ``sid`` joined ``room`` at ``joined`` (ms since the epoch)."""
    RoomMembership.objects.bulk_create([_membership(sid, namespace, room, joined)], ignore_conflicts=True)


def remove_membership(sid: str, namespace: str, room: str) -> None:
    """Record that socket ``sid`` left ``room``."""
    RoomMembership.objects.filter(socket_id=sid, group=room_group(namespace, room)).delete()


def save_data(sid: str, data: EncodedJSON) -> None:
    """Store a socket's ``data``."""
    NamespaceSocket.objects.filter(sid=sid).update(data=data)


# Connection state recovery -------------------------------------------------------


def suspend_socket(socket: StoredSocket, pid_digest: str, reason: str) -> None:
    """Keep a socket whose connection was lost for its client to recover (:mod:`sioless.recovery`),
    with its session's handshake (once for the session's sockets)."""
    with transaction.atomic(savepoint=False):
        NamespaceSocket.objects.filter(sid=socket.sid).delete()
        LostSession.objects.get_or_create(sid=socket.eio_sid, defaults={"handshake": socket.handshake})
        SuspendedSocket.objects.update_or_create(
            sid=socket.sid,
            defaults={
                "pid_digest": pid_digest,
                "namespace": socket.namespace,
                "namespace_group": namespace_group(socket.namespace),
                "session_id": socket.eio_sid,
                "auth": seal(socket.auth) if socket.auth_kept else None,
                "data": socket.data,
                "rooms": {room: socket.joined.get(room, 0) for room in sorted(socket.rooms - {socket.sid})},
                "reason": reason,
            },
        )


def claim_suspended(pid_digest: str, namespace: str, max_age: float) -> tuple[StoredSocket, str] | None:
    """Take the suspended socket of a pid in ``namespace`` out of the database, with why it was lost,
    if it is younger than ``max_age`` seconds; only one claim of it ever gets it."""
    kept = SuspendedSocket.objects.filter(
        pid_digest=pid_digest,
        namespace_group=namespace_group(namespace),
        suspended__gte=Now() - timedelta(seconds=max_age),
    ).select_related("session")
    for row in kept:
        if SuspendedSocket.objects.filter(sid=row.sid).delete()[0]:
            return _suspended_socket(row), row.reason
    return None


def live_session_of(pid_digest: str, namespace: str) -> str | None:
    """The engine session of the connected socket of a pid in ``namespace``, if there is one."""
    sockets = NamespaceSocket.objects.filter(pid_digest=pid_digest, namespace_group=namespace_group(namespace))
    return sockets.values_list("session_id", flat=True).first()


#: Most suspended sockets :func:`expire_suspended` takes out at a time.
EXPIRE_BATCH = 500


def expire_suspended(max_age: float) -> list[tuple[StoredSocket, str]]:
    """Take out (up to EXPIRE_BATCH of) the suspended sockets older than ``max_age`` seconds, each
    with why it was lost, in one statement; each is taken by one caller only (rows another caller
    holds are skipped). Lost sessions with no socket left go with them."""
    cutoff = Now() - timedelta(seconds=max_age)
    with transaction.atomic():
        expired = SuspendedSocket.objects.filter(suspended__lt=cutoff).select_related("session")
        taken = list(expired.select_for_update(skip_locked=True, of=("self",))[:EXPIRE_BATCH])
        SuspendedSocket.objects.filter(sid__in=[row.sid for row in taken]).delete()
        LostSession.objects.filter(lost__lt=cutoff, sockets__isnull=True).delete()
    return [(_suspended_socket(row), row.reason) for row in taken]


def _suspended_socket(row: SuspendedSocket) -> StoredSocket:
    return StoredSocket(
        sid=row.sid,
        eio_sid=row.session_id,
        namespace=row.namespace,
        **_auth(row.auth),
        data=row.data,
        rooms=frozenset({row.sid, *row.rooms}),
        joined=dict(row.rooms),
        handshake=row.session.handshake,
    )


def _auth(sealed: Any) -> dict[str, Any]:
    """A stored socket's ``auth`` and ``auth_kept``, from what the database keeps."""
    auth = unseal(sealed)
    return {"auth": {}, "auth_kept": False} if auth is NOT_KEPT else {"auth": auth, "auth_kept": True}


def load_shard(shard: int) -> list[StoredSession]:
    """Every session of a shard, with sockets and rooms: what a worker revives."""
    sessions = EngineSession.objects.filter(shard=shard).prefetch_related("sockets__memberships")
    return [
        StoredSession(
            sid=session.sid,
            reply_channel=session.reply_channel,
            handshake=session.handshake,
            upgraded=session.upgraded,
            sockets=[_stored_socket(socket, session) for socket in session.sockets.all()],
            pid_digests={socket.sid: socket.pid_digest for socket in session.sockets.all() if socket.pid_digest},
        )
        for session in sessions
    ]


def fetch_sockets(namespace: str, rooms: list[str]) -> list[StoredSocket]:
    """The sockets of ``namespace`` in any of ``rooms`` (all of them when ``rooms`` is empty)."""
    sockets = _sockets_in(namespace, rooms).select_related("session").prefetch_related("memberships")
    return [_stored_socket(socket, socket.session) for socket in sockets.order_by("connected")]


def namespaces() -> list[str]:
    """The namespaces that have sockets."""
    return list(NamespaceSocket.objects.order_by().values_list("namespace", flat=True).distinct())


def socket_sids(namespace: str, rooms: list[str]) -> set[str]:
    """The sids of the sockets :func:`fetch_sockets` would return, in one light query."""
    return set(_sockets_in(namespace, rooms).values_list("sid", flat=True))


def _sockets_in(namespace: str, rooms: list[str]) -> QuerySet[NamespaceSocket]:
    sockets = NamespaceSocket.objects.filter(namespace_group=namespace_group(namespace))
    if rooms:
        groups = [room_group(namespace, room) for room in rooms]
        sids = [room for room in rooms if SID_SHAPE.fullmatch(room)]  # any other name is no sid: kept from SQL
        sockets = sockets.filter(Q(sid__in=sids) | Q(memberships__group__in=groups)).distinct()
    return sockets


def _stored_socket(socket: NamespaceSocket, session: EngineSession) -> StoredSocket:
    return StoredSocket(
        sid=socket.sid,
        eio_sid=session.sid,
        namespace=socket.namespace,
        **_auth(socket.auth),
        data=socket.data,
        rooms=frozenset({socket.sid, *(membership.room for membership in socket.memberships.all())}),
        joined={membership.room: membership.joined for membership in socket.memberships.all()},
        handshake=session.handshake,
        upgraded=session.upgraded,
    )


def acquire_lease(shard: int, holder: str, ttl: float, force: bool = False, replacing: str = "") -> bool:
    """Take or renew the lease of ``shard`` for ``ttl`` seconds; False while another holds it
    (unless ``force``: development's one process knows any other holder is gone; or it is held by
    ``replacing``, a holder known to be gone: only one of the workers that know it takes it)."""
    expires = Now() + timedelta(seconds=ttl)
    leases = ShardLease.objects.filter(shard=shard)
    if not force:
        leases = leases.filter(Q(holder=holder) | Q(holder=replacing) | Q(expires__lt=Now()))
    if leases.update(holder=holder, expires=expires):
        return True
    try:
        with transaction.atomic():
            ShardLease.objects.create(shard=shard, holder=holder, expires=expires)
    except IntegrityError:
        return False
    return True


def lease_holder(shard: int) -> str | None:
    """Who holds the lease of ``shard`` (or last held it)."""
    return ShardLease.objects.filter(shard=shard).values_list("holder", flat=True).first()


def release_lease(shard: int, holder: str) -> None:
    """Give up the lease of ``shard`` at once, if ``holder`` has it."""
    ShardLease.objects.filter(shard=shard, holder=holder).update(expires=Now())


# The heartbeat ------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A ticker's turn: the tick to send now (if one is due), when the next is due, whether the
    ticker still runs the heartbeat, and when the tick two before this one went out (if any)."""

    tick: int | None
    wait: float
    mine: bool
    tick_before_last_at: datetime | None = None


def start_ticker(ticker: str) -> None:
    """Make ``ticker`` the one that runs the heartbeat; the one before stops at its next turn."""
    Heartbeat.objects.update_or_create(
        pk=1, defaults={"ticker": ticker}, create_defaults={"ticker": ticker, "next_tick": timezone.now()}
    )


def claim_tick(ticker: str, interval: float, take_over_after: float | None) -> Claim:
    """Take the next tick if it is due and ``ticker`` runs the heartbeat. With ``take_over_after``,
    a ticker takes the heartbeat over from one that is that many seconds late."""
    with transaction.atomic():
        clock = Heartbeat.objects.select_for_update().get(pk=1)
        now = timezone.now()
        overdue = (now - clock.next_tick).total_seconds()
        if clock.ticker != ticker and take_over_after is not None and overdue > take_over_after:
            clock.ticker = ticker
        if clock.ticker != ticker:
            return Claim(None, max(0.0, -overdue), mine=False)
        if overdue < 0:
            return Claim(None, -overdue, mine=True)
        tick_before_last_at = clock.previous_ticked_at
        clock.tick += 1
        clock.next_tick = now + timedelta(seconds=interval)
        clock.previous_ticked_at, clock.ticked_at = clock.ticked_at, now
        clock.save()
        return Claim(clock.tick, interval, mine=True, tick_before_last_at=tick_before_last_at)


def record_alive(processes: set[str], tick: int) -> None:
    """Note that these server processes answered ``tick``."""
    ServerProcess.objects.bulk_create(
        [ServerProcess(name=name, last_tick=tick) for name in processes],
        update_conflicts=True,
        unique_fields=["name"],
        update_fields=["last_tick"],
    )


def dead_processes(tick: int, tick_before_last_at: datetime | None) -> dict[tuple[str, int], list[str]]:
    """The sids of the sessions whose server process answered neither of the two ticks before
    ``tick``, sent at ``tick_before_last_at`` and after, by (process, shard). Counted in ticks, not
    seconds, so a pause of the heartbeat condemns no one; sessions opened since are left alone
    (their process may not have had those ticks)."""
    ServerProcess.objects.filter(last_tick__lt=tick - 2).delete()
    if tick_before_last_at is None:
        return {}
    alive = ServerProcess.objects.values("name")
    sessions = EngineSession.objects.filter(opened__lt=tick_before_last_at).exclude(process__in=alive)
    found: dict[tuple[str, int], list[str]] = {}
    for sid, process, shard in sessions.values_list("sid", "process", "shard"):
        found.setdefault((process, shard), []).append(sid)
    return found
