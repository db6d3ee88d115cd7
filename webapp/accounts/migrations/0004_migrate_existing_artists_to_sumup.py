"""Give every existing artist the status `not_connected` and no stale token.

Runs as a sequence of short transactions over primary-key ranges (non-atomic migration),
so a large table is never locked as a whole and an interrupted run resumes where it
stopped: a row already filled is not matched again.
"""

from django.db import migrations

from accounts.sumup.status_backfill import backfill_connection_status


def forwards(apps, schema_editor):
    ArtistProfile = apps.get_model("accounts", "ArtistProfile")
    backfill_connection_status(ArtistProfile, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0003_add_sumup_oauth_fields"),
    ]

    operations = [
        # Backwards there is nothing to undo: 0003's reversal drops the columns.
        migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False),
    ]
