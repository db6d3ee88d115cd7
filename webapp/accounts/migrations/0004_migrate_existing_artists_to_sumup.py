"""Give every existing artist the status `not_connected` and no stale token.

Up to BACKFILL_INLINE_MAX_ROWS artists, the work runs here, as a sequence of short
transactions over primary-key ranges (non-atomic migration): a large table is never
locked as a whole and an interrupted run resumes where it stopped, since a row already
filled is not matched again. Above that, the migration only records a pending run of
the `sumup_connection_status` backfill and returns at once; the Celery workers do the
work while the site stays up (`manage.py backfill status sumup_connection_status`).
"""

from django.conf import settings
from django.db import migrations

from accounts.sumup.status_backfill import backfill_connection_status, pending_count

BACKFILL = "sumup_connection_status"


def forwards(apps, schema_editor):
    alias = schema_editor.connection.alias
    ArtistProfile = apps.get_model("accounts", "ArtistProfile")
    pending = pending_count(ArtistProfile, using=alias)
    if pending <= settings.BACKFILL_INLINE_MAX_ROWS:
        backfill_connection_status(ArtistProfile, using=alias)
        return
    BackfillRun = apps.get_model("backfills", "BackfillRun")
    active = BackfillRun.objects.using(alias).filter(
        backfill=BACKFILL, status__in=["pending", "running", "paused", "cancelling"]
    )
    if not active.exists():
        run = BackfillRun.objects.using(alias).create(
            backfill=BACKFILL,
            status="pending",
            rows_total=pending,
            batch_size=settings.BACKFILL_BATCH_SIZE,
            target_batch_ms=settings.BACKFILL_TARGET_BATCH_MS,
            pause_ms=settings.BACKFILL_PAUSE_MS,
        )
        apps.get_model("backfills", "BackfillEvent").objects.using(alias).create(
            run=run, action="record", detail="recorded by accounts.0004 for the workers"
        )
    _wake_the_workers()
    print(
        f"\n  {pending} artists to fill exceed BACKFILL_INLINE_MAX_ROWS="
        f"{settings.BACKFILL_INLINE_MAX_ROWS}: the Celery workers will fill them. "
        f"Follow with: manage.py backfill status {BACKFILL}"
    )


def _wake_the_workers():
    """Ask running workers to pick the run up now rather than at their next recovery
    sweep. Best effort: with no broker reachable, workers find it when they start."""
    try:
        from jobs.backfills import recover

        recover.apply_async(retry=False)
    except Exception:  # noqa: S110 - the run is recorded; waking is an optimisation
        pass


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
