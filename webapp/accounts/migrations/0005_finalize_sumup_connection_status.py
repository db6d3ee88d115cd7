"""Finalize the SumUp status column: default `not_connected`, NOT NULL.

Safe on a large live table (see FinalizeNotNull), so it is non-atomic by design.
"""

from django.db import migrations, models

from accounts.migration_operations import FinalizeNotNull


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        # Applied last: the columns of 0006 and 0007 go in first, so the site runs on the
        # full schema while the workers backfill and this migration waits for them.
        ("accounts", "0007_sumup_refresh_bookkeeping"),
    ]

    operations = [
        FinalizeNotNull(
            model_name="artistprofile",
            name="sumup_connection_status",
            field=models.CharField(
                choices=[
                    ("not_connected", "Not connected"),
                    ("connected", "Connected"),
                    ("expired", "Token expired"),
                    ("error", "Connection error"),
                ],
                db_default="not_connected",
                default="not_connected",
                max_length=20,
            ),
            remedy="Finish the backfill of accounts.0004_migrate_existing_artists_to_sumup (`manage.py verify_sumup_migration` shows what is left), then migrate again.",
        ),
    ]
