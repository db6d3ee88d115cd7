"""A backfill run's progress as staff read it: one payload, every field of it.

The admin's change list and run page render their first view from `status_payload`, and
their live poll (`…/<id>/progress/`) serves the same dict as JSON, so the status text, the
rows, the bar, the rate, the ETA and the actions offered always come from one reading of
the run and follow one set of rules; `manage.py backfill` prints the same texts. Rules:

- a run that ended well shows a full bar, its rows and its average rate, and no ETA;
- a pending run (recorded, no worker yet) shows an empty bar, no rate and no ETA;
- a stalled run says so ("Stalled — no progress for 2 min"), keeps the bar where it
  stopped, and shows no rate and no ETA: there is none to measure;
- an ETA is shown only while a run is moving and has rows left, never "0 s".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format

from backfills.control import ALLOWED_FROM
from backfills.models import BackfillRun, RunStatus
from events.durations import roughly

NOTHING = "—"  # what a field shows when it has no value now


def actions_now(run: BackfillRun) -> list[str]:
    """The actions that apply to the run as it is (control refuses the others)."""
    return [action for action, statuses in ALLOWED_FROM.items() if run.status in statuses]


def _rows_text(run: BackfillRun) -> str:
    if run.status == RunStatus.SUCCEEDED:
        return f"{run.rows_done:,} rows done, none left"
    if run.status == RunStatus.PENDING:
        return f"0 of about {run.rows_total:,} rows: waiting for a worker"
    return f"{run.rows_done:,} of {run.rows_total:,} rows"


def _rate(run: BackfillRun, stalled: bool) -> tuple[int | None, str]:
    """Rows per second and how it reads: the recent rate while running, the average from
    start to end once over, none while pending, paused or stalled."""
    if run.status in (RunStatus.PENDING, RunStatus.PAUSED) or stalled:
        return None, NOTHING
    rate = round(run.rows_per_second)
    if not rate:  # fewer than two recent batches, or none at all: nothing measured
        return None, NOTHING
    return rate, f"{rate:,} rows/s" if run.is_active else f"{rate:,} rows/s on average"


def _eta(run: BackfillRun, stalled: bool) -> int | None:
    if run.status != RunStatus.RUNNING or stalled or run.rows_done >= run.rows_total:
        return None
    eta = run.eta_seconds
    return None if eta is None else max(1, round(eta))


def _moment(at: datetime | None, *, to_the_second: bool = False) -> str:
    """As the admin shows its other dates; a heartbeat to the second, as it is read."""
    if at is None:
        return NOTHING
    shape = "j M Y, H:i:s" if to_the_second else "DATETIME_FORMAT"
    return date_format(timezone.localtime(at), shape)


def status_payload(run: BackfillRun, now: datetime | None = None) -> dict[str, Any]:
    """Everything the admin shows of `run`'s progress, as read now. JSON values only."""
    stalled_for = run.stalled_for(now)
    stalled = stalled_for is not None
    percent = round(run.progress * 100, 1)
    rows_per_second, rate_text = _rate(run, stalled)
    eta_seconds = _eta(run, stalled)
    return {
        "id": run.pk,
        "backfill": run.backfill,
        "status": run.status,
        "active": run.is_active,
        "state": run.state(now),
        "stalled": stalled,
        "no_progress_seconds": None if stalled_for is None else int(stalled_for.total_seconds()),
        "rows_done": run.rows_done,
        "rows_total": run.rows_total,
        "rows_text": _rows_text(run),
        "percent": percent,
        "percent_text": f"{percent:.1f}%",
        "rows_per_second": rows_per_second,
        "rate_text": rate_text,
        "eta_seconds": eta_seconds,
        "eta_text": NOTHING if eta_seconds is None else f"about {roughly(eta_seconds)}",
        "batch_size": run.batch_size,
        "batch_size_text": f"{run.batch_size:,} rows",
        "batches_done": run.batches_done,
        "batches_done_text": f"{run.batches_done:,}",
        "cursor_text": NOTHING if run.cursor is None else str(run.cursor),
        "generation_text": str(run.generation),
        "heartbeat_text": _moment(run.heartbeat_at, to_the_second=True),
        "started_text": _moment(run.started_at),
        "finished_text": _moment(run.finished_at),
        "last_error": run.last_error,
        "last_error_text": run.last_error or NOTHING,
        "actions": actions_now(run),
    }
