"""Whether an engine session moved from HTTP long-polling to WebSocket (the Admin UI shows it)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sioless", "0003_lost_sessions_room_joins"),
    ]

    operations = [
        migrations.AddField(
            model_name="enginesession",
            name="upgraded",
            field=models.BooleanField(default=False, help_text="moved from HTTP long-polling to WebSocket"),
        ),
    ]
