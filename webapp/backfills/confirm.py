"""What starting or cancelling a run will do, in numbers, for staff to confirm first."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from backfills import engine, registry
from backfills.models import BackfillRun, RunStatus


@dataclass(frozen=True)
class Consequence:
    question: str  # the one line staff say yes to
    detail: str  # what follows from it, and how to undo or slow it


def of_start(backfill: registry.Backfill) -> Consequence:
    """Starting `backfill` now, with the settings a new run takes (control.start)."""
    rows = backfill.count_to_do()
    batch = settings.BACKFILL_BATCH_SIZE
    target, pause = settings.BACKFILL_TARGET_BATCH_MS, settings.BACKFILL_PAUSE_MS
    busy_percent = 100 * target / (target + pause)
    busy = f"about {busy_percent:.0f}%" if busy_percent >= 1 else "less than 1%"
    return Consequence(
        question=f"Start {backfill.name!r} over about {rows:,} rows, in batches of {batch:,}?",
        detail=(
            f"Batches start at {batch:,} rows and are resized to take about {target:,} ms "
            f"each (never more than {engine.MAX_BATCH:,} rows), {pause:,} ms apart: one "
            f"database connection is busy {busy} of the time until the run ends. "
            "The site keeps answering meanwhile. The run can be paused or cancelled at any "
            "time, and the wait between its batches changed on its page."
        ),
    )


def of_cancel(run: BackfillRun) -> Consequence:
    """Cancelling `run` as it is now."""
    detail = "No worker has taken it up yet: it ends at once."
    if run.status == RunStatus.RUNNING:
        detail = "A batch in progress finishes first; the run ends after it."
    elif run.status == RunStatus.PAUSED:
        detail = "It is paused: it ends at once."
    return Consequence(
        question=(
            f"Cancel {run.backfill!r} run #{run.pk}? {run.rows_done:,} of "
            f"{run.rows_total:,} rows done stay done; the rest are not touched until a new run."
        ),
        detail=detail,
    )
