"""What a data migration calls to do a declared backfill (see backfills.registry).

Up to BACKFILL_INLINE_MAX_ROWS rows to do, the migration runs the backfill itself, through
the engine's batches, and records no run. Above that it records a pending run, wakes the
workers and returns at once, so a deploy never waits on a long backfill; the first worker
to see the run starts it (backfills.control.claim_pending).

Like any RunPython code, these work on the migration's historical models and its
database. The migration must be non-atomic, so that each batch commits on its own.
"""

import contextlib
from dataclasses import dataclass

from django.apps.registry import Apps
from django.conf import settings
from django.db import transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from backfills import engine, registry
from backfills.models import ACTIVE, RunStatus
from events import queue


@dataclass(frozen=True)
class Outcome:
    rows: int  # rows to do when the migration looked
    inline: bool  # True: done by the migration; False: left to the workers


def run_or_hand_off(
    name: str, apps: Apps, schema_editor: BaseDatabaseSchemaEditor, *, recorded_by: str
) -> Outcome:
    """Do the backfill `name` inline when it is small, else hand it to the workers.
    `recorded_by` names the migration in the run's record, e.g. "accounts.0004"."""
    backfill = registry.get(name)
    using = schema_editor.connection.alias
    rows = backfill.count_to_do(apps, using)
    if rows <= settings.BACKFILL_INLINE_MAX_ROWS:
        engine.run_inline(backfill, backfill.all_rows(apps, using), settings.BACKFILL_BATCH_SIZE)
        return Outcome(rows, inline=True)
    record_pending(name, apps, using, rows, detail=f"recorded by {recorded_by} for the workers")
    wake_workers()
    return Outcome(rows, inline=False)


def record_pending(name: str, apps: Apps, using: str, rows_total: int, *, detail: str) -> None:
    """Record a pending run of `name` for the workers, unless one is active already (an
    earlier attempt of the same migration recorded it)."""
    runs = apps.get_model("backfills", "BackfillRun")._default_manager.db_manager(using)
    audit = apps.get_model("backfills", "BackfillEvent")._default_manager.db_manager(using)
    if runs.filter(backfill=name, status__in=ACTIVE).exists():
        return
    with transaction.atomic(using=using):
        run = runs.create(
            backfill=name,
            status=RunStatus.PENDING,
            rows_total=rows_total,
            batch_size=settings.BACKFILL_BATCH_SIZE,
            target_batch_ms=settings.BACKFILL_TARGET_BATCH_MS,
            pause_ms=settings.BACKFILL_PAUSE_MS,
        )
        audit.create(run=run, action="record", detail=detail)


def wake_workers() -> None:
    """Ask running workers to pick a recorded run up now rather than at their next
    recovery round. Best effort: with no broker reachable, workers find it when they start
    (and beat's recovery every BACKFILLS_RECOVER_INTERVAL)."""
    with contextlib.suppress(Exception):  # the run is recorded; waking is an optimisation
        queue.enqueue("jobs.backfills.recover", retry=False)
