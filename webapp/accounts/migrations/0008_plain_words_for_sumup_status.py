"""The lapsed status's label in plain words: a change of choices only, with no SQL."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_finalize_sumup_connection_status"),
    ]

    operations = [
        migrations.AlterField(
            model_name="artistprofile",
            name="sumup_connection_status",
            field=models.CharField(
                choices=[
                    ("not_connected", "Not connected"),
                    ("connected", "Connected"),
                    ("expired", "Needs reconnecting"),
                    ("error", "Connection error"),
                ],
                db_default="not_connected",
                default="not_connected",
                max_length=20,
            ),
        ),
    ]
