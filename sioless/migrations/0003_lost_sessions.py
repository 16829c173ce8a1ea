"""A lost session's handshake kept once for its suspended sockets (was a copy in each); engine
sessions stored by key (``sids.session_key``), never by the polling sid, a bearer token."""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

import sioless.fields


def keep_handshakes_once(apps: Any, schema_editor: Any) -> None:
    """Give each suspended socket the lost session it was suspended with."""
    lost_session = apps.get_model("sioless", "LostSession")
    suspended_socket = apps.get_model("sioless", "SuspendedSocket")
    for socket in suspended_socket.objects.all():
        key = socket.eio_sid.partition(".")[0]
        lost_session.objects.get_or_create(sid=key, defaults={"handshake": socket.handshake})
        suspended_socket.objects.filter(sid=socket.sid).update(session_id=key)


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
