"""Give every existing artist the status `not_connected` and no stale token.

Up to BACKFILL_INLINE_MAX_ROWS artists, the work runs here, as a sequence of short
transactions over primary-key ranges (non-atomic migration): a large table is never
locked as a whole and an interrupted run resumes where it stopped, since a row already
filled is not matched again. Above that, the migration only records a pending run of
the `sumup_connection_status` backfill and returns at once; the Celery workers do the
work while the site stays up (`manage.py backfill status sumup_connection_status`).
Both ways are the backfills app's (backfills.data_migrations).
"""

from django.conf import settings
from django.db import migrations

from backfills.data_migrations import run_or_hand_off

BACKFILL = "sumup_connection_status"


def forwards(apps, schema_editor):
    outcome = run_or_hand_off(BACKFILL, apps, schema_editor, recorded_by="accounts.0004")
    if outcome.inline:
        return
    print(
        f"\n  {outcome.rows} artists to fill exceed BACKFILL_INLINE_MAX_ROWS="
        f"{settings.BACKFILL_INLINE_MAX_ROWS}: the Celery workers will fill them. "
        f"Follow with: manage.py backfill status {BACKFILL}"
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0003_add_sumup_oauth_fields"),
        ("backfills", "0001_initial"),
    ]

    operations = [
        # Backwards there is nothing to undo: 0003's reversal drops the columns.
        migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False),
    ]
