"""The state a worker revives from: engine sessions, namespace sockets, room memberships.

Rows change on state changes only (open, connect, join, leave, data saved,
disconnect, close), never per event.
"""

from __future__ import annotations

from django.db import models

from .fields import JSONTextField, NameField


class EngineSession(models.Model):
    """One Engine.IO connection: where its consumer listens, and its handshake."""

    sid = models.CharField(primary_key=True, max_length=200, help_text="sids.session_key(sid): never a bearer token")
    shard = models.PositiveIntegerField(db_index=True)
    reply_channel = models.CharField(max_length=200)
    process = models.CharField(max_length=200, db_index=True, help_text="names.process_of(reply_channel)")
    handshake = JSONTextField()
    user_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    opened = models.DateTimeField(auto_now_add=True)
    #: A default in the database too: code of the version before (a rolling deploy) inserts without it.
    upgraded = models.BooleanField(
        default=False, db_default=False, help_text="moved from HTTP long-polling to WebSocket"
    )

    class Meta:
        verbose_name = "engine session"

    def __str__(self) -> str:
        return self.sid


class NamespaceSocket(models.Model):
    """A socket connected to a namespace, with its auth payload and data."""

    sid = models.CharField(primary_key=True, max_length=40)
    session = models.ForeignKey(EngineSession, on_delete=models.CASCADE, related_name="sockets")
    namespace = NameField()
    namespace_group = models.CharField(max_length=64, db_index=True, help_text="names.namespace_group(namespace)")
    auth = JSONTextField(default=dict)
    data = JSONTextField(default=dict)
    connected = models.DateTimeField(auto_now_add=True)
    pid_digest = models.CharField(
        max_length=64, null=True, blank=True, db_index=True, help_text="recovery.digest(pid), with recovery on"
    )

    class Meta:
        verbose_name = "socket"

    def __str__(self) -> str:
        return f"{self.namespace} {self.sid}"


class RoomMembership(models.Model):
    """A socket in a room (its own sid-named room is implied, not stored).

    Rooms are looked up by ``group`` (a hash of namespace and room, the room's
    channel-layer group): names of any length stay out of the indexes.
    """

    socket = models.ForeignKey(NamespaceSocket, on_delete=models.CASCADE, related_name="memberships")
    namespace = NameField()
    room = NameField()
    group = models.CharField(max_length=64, db_index=True, help_text="names.room_group(namespace, room)")
    joined = models.BigIntegerField(default=0, help_text="when, in ms since the epoch (0: not known)")

    class Meta:
        verbose_name = "room membership"
        constraints = [models.UniqueConstraint(fields=["socket", "group"], name="sioless_one_membership_per_room")]

    def __str__(self) -> str:
        return f"{self.room} ∋ {self.socket_id}"


class LostSession(models.Model):
    """An engine session whose connection was lost with sockets its client may recover: its
    handshake, kept once for them all."""

    sid = models.CharField(primary_key=True, max_length=200, help_text="sids.session_key(sid)")
    handshake = JSONTextField()
    lost = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "lost session"

    def __str__(self) -> str:
        return self.sid


class SuspendedSocket(models.Model):
    """A socket whose connection was lost, kept for ``MAX_DISCONNECTION_DURATION`` for its client to
    recover (connection state recovery): with its session's, everything a worker needs to serve it
    again, or to run its disconnect handler when it expires."""

    sid = models.CharField(primary_key=True, max_length=40)
    pid_digest = models.CharField(max_length=64, db_index=True, help_text="recovery.digest(pid)")
    namespace = NameField()
    namespace_group = models.CharField(max_length=64, help_text="names.namespace_group(namespace)")
    session = models.ForeignKey(LostSession, on_delete=models.CASCADE, related_name="sockets")
    auth = JSONTextField(default=dict)
    data = JSONTextField(default=dict)
    rooms = JSONTextField(default=dict, help_text="{room: when it joined, ms since the epoch}")
    reason = models.CharField(max_length=40, help_text="why its connection was lost")
    suspended = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "suspended socket"

    def __str__(self) -> str:
        return f"{self.namespace} {self.sid}"


class ShardLease(models.Model):
    """Which worker serves a shard, until when: exactly one at a time."""

    shard = models.PositiveIntegerField(primary_key=True)
    holder = models.CharField(max_length=100)
    expires = models.DateTimeField()

    class Meta:
        verbose_name = "shard lease"

    def __str__(self) -> str:
        return f"shard {self.shard}: {self.holder}"


class Heartbeat(models.Model):
    """The heartbeat's clock (one row): the ticker running it, the last tick and when the two last
    ticks went out, and when the next is due."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    ticker = models.CharField(max_length=100)
    next_tick = models.DateTimeField()
    tick = models.PositiveBigIntegerField(default=0)
    ticked_at = models.DateTimeField(null=True)
    previous_ticked_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"tick {self.tick} by {self.ticker}"


class ServerProcess(models.Model):
    """An ASGI server process, by its consumers' reply-channel prefix: the last tick it answered."""

    name = models.CharField(primary_key=True, max_length=200)
    last_tick = models.PositiveBigIntegerField()

    class Meta:
        verbose_name = "server process"

    def __str__(self) -> str:
        return self.name
