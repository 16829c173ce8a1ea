"""Whether an engine session moved from HTTP long-polling to WebSocket (the Admin UI shows it); a
default in the database too, for the code of the version before during a rolling deploy."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sioless", "0003_lost_sessions_room_joins"),
    ]

    operations = [
        migrations.AddField(
            model_name="enginesession",
            name="upgraded",
            field=models.BooleanField(
                default=False, db_default=False, help_text="moved from HTTP long-polling to WebSocket"
            ),
        ),
    ]
