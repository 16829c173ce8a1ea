"""A lost session's handshake kept once for its suspended sockets (was a copy in each); engine
sessions stored by key (``sids.session_key``), never by the polling sid, a bearer token; when a
socket joined each room (a recovery replays a room's events from then on)."""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

import sioless.fields


def keep_handshakes_once(apps: Any, schema_editor: Any) -> None:
    """Give each suspended socket the lost session it was suspended with, and its rooms as
    {room: when it joined}, when unknown (0)."""
    lost_session = apps.get_model("sioless", "LostSession")
    suspended_socket = apps.get_model("sioless", "SuspendedSocket")
    for socket in suspended_socket.objects.all():
        key = socket.eio_sid.partition(".")[0]
        lost_session.objects.get_or_create(sid=key, defaults={"handshake": socket.handshake})
        rooms = dict.fromkeys(socket.rooms, 0)
        suspended_socket.objects.filter(sid=socket.sid).update(session_id=key, rooms=rooms)


class Migration(migrations.Migration):
    dependencies = [
        ("sioless", "0002_connection_state_recovery"),
    ]

    operations = [
        migrations.AlterField(
            model_name="enginesession",
            name="sid",
            field=models.CharField(
                help_text="sids.session_key(sid): never a bearer token",
                max_length=200,
                primary_key=True,
                serialize=False,
            ),
        ),
        migrations.CreateModel(
            name="LostSession",
            fields=[
                (
                    "sid",
                    models.CharField(
                        help_text="sids.session_key(sid)", max_length=200, primary_key=True, serialize=False
                    ),
                ),
                ("handshake", sioless.fields.JSONTextField()),
                ("lost", models.DateTimeField(auto_now_add=True, db_index=True)),
            ],
            options={
                "verbose_name": "lost session",
            },
        ),
        migrations.AddField(
            model_name="suspendedsocket",
            name="session",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="sockets",
                to="sioless.lostsession",
            ),
        ),
        migrations.AddField(
            model_name="roommembership",
            name="joined",
            field=models.BigIntegerField(default=0, help_text="when, in ms since the epoch (0: not known)"),
        ),
        migrations.AlterField(
            model_name="suspendedsocket",
            name="rooms",
            field=sioless.fields.JSONTextField(default=dict, help_text="{room: when it joined, ms since the epoch}"),
        ),
        migrations.RunPython(keep_handshakes_once, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="suspendedsocket",
            name="session",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="sockets", to="sioless.lostsession"
            ),
        ),
        migrations.RemoveField(model_name="suspendedsocket", name="eio_sid"),
        migrations.RemoveField(model_name="suspendedsocket", name="handshake"),
    ]
