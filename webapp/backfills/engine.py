"""Running one batch of a backfill, the unit every worker task repeats.

A batch is one short transaction that:
  1. locks the run row and checks the caller's generation and the run's status, so a
     stale or duplicated task does nothing;
  2. on PostgreSQL, sets `lock_timeout` and `statement_timeout` for itself;
  3. finds the next key range (keyset: `pk > cursor ORDER BY pk LIMIT size`), applies the
     backfill to the pending rows in it, and
  4. advances the cursor, the counters and the ledger in the same transaction.
A redelivered batch therefore finds its range already behind the cursor. A batch that
times out is rolled back and retried at half the size; one that keeps failing fails the
run, which resumes from its cursor when retried.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from backfills import registry
from backfills.keyset import apply_next_range
from backfills.models import BackfillBatch, BackfillRun, RunStatus

log = logging.getLogger(__name__)

MIN_BATCH = 100  # rows
MAX_BATCH = 50_000  # rows
MAX_ATTEMPTS = 3  # failures of one batch before the run fails
RECENT_BATCHES = 50  # timings kept on the run for rows/s and the ETA
LOCK_TIMEOUT_MS = 2_000
STATEMENT_TIMEOUT_MS = 5_000


class Step(enum.Enum):
    CONTINUE = "continue"  # a batch committed; more to do
    DONE = "done"  # the run finished (succeeded, failed verification, or was cancelled)
    STOP = "stop"  # not ours to run: paused, cancelled elsewhere, or a newer generation
    RETRY = "retry"  # the batch failed and was rolled back; try again later


@dataclass(frozen=True)
class StepResult:
    step: Step
    rows: int = 0
    ms: float = 0.0
    error: str = ""


def next_batch_size(current: int, elapsed_ms: float, target_ms: int) -> int:
    """Steer toward the target duration: grow at most x1.5, shrink at most /2, clamped."""
    if elapsed_ms <= 0:
        return min(MAX_BATCH, int(current * 1.5))
    ratio = min(1.5, max(0.5, target_ms / elapsed_ms))
    return max(MIN_BATCH, min(MAX_BATCH, int(current * ratio)))


def _set_local_timeouts() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            # The cursor commits with the rows, so a commit lost in a crash only means the
            # batch runs again; not waiting for the WAL flush saves ~3 ms per batch.
            cursor.execute("SET LOCAL synchronous_commit = off")


def _apply_range(
    backfill: registry.Backfill, cursor: int | None, size: int
) -> tuple[int | None, int]:
    return apply_next_range(backfill.all_rows(), backfill.pending, backfill.apply, cursor, size)


def run_one_batch(run_id: int, generation: int) -> StepResult:
    """Do the next batch of a running run, if `generation` still owns it."""
    started = time.perf_counter()
    try:
        with transaction.atomic():
            run = BackfillRun.objects.select_for_update().get(pk=run_id)
            if run.generation != generation:
                return StepResult(Step.STOP)
            if run.status == RunStatus.CANCELLING:
                _finish(run, RunStatus.CANCELLED)
                return StepResult(Step.DONE)
            if run.status != RunStatus.RUNNING:
                return StepResult(Step.STOP)
            _set_local_timeouts()
            backfill = registry.get(run.backfill)
            low = run.cursor
            high, rows = _apply_range(backfill, low, run.batch_size)
            elapsed_ms = (time.perf_counter() - started) * 1000
            BackfillBatch.objects.create(
                run=run, low=low if low is not None else 0, high=high, rows=rows, ms=elapsed_ms
            )
            _record_batch(run, high, rows, elapsed_ms)
    except (DatabaseError, LookupError) as exc:
        return _batch_failed(run_id, generation, exc)
    if high is None:
        return _complete(run_id, generation, rows, elapsed_ms)
    return StepResult(Step.CONTINUE, rows=rows, ms=elapsed_ms)


def _record_batch(run: BackfillRun, high: int | None, rows: int, elapsed_ms: float) -> None:
    now = timezone.now()
    run.cursor = high if high is not None else run.cursor
    run.rows_done += rows
    run.batches_done += 1
    run.recent_batches = [
        *run.recent_batches[-(RECENT_BATCHES - 1) :],
        {"rows": rows, "ms": round(elapsed_ms, 2), "at": now.isoformat()},
    ]
    run.batch_size = next_batch_size(run.batch_size, elapsed_ms, run.target_batch_ms)
    run.rows_total = max(run.rows_total, run.rows_done)
    run.failed_attempts = 0
    run.heartbeat_at = now
    run.save(
        update_fields=[
            "cursor",
            "rows_done",
            "batches_done",
            "recent_batches",
            "batch_size",
            "rows_total",
            "failed_attempts",
            "heartbeat_at",
        ]
    )


def _complete(run_id: int, generation: int, rows: int, elapsed_ms: float) -> StepResult:
    """The cursor passed the last key: verify the end state, then close the run."""
    run = BackfillRun.objects.get(pk=run_id)
    problems = registry.get(run.backfill).problems()
    with transaction.atomic():
        run = BackfillRun.objects.select_for_update().get(pk=run_id)
        if run.generation != generation or run.status != RunStatus.RUNNING:
            return StepResult(Step.STOP)
        if problems:
            run.last_error = "verification failed: " + "; ".join(problems)
            _finish(run, RunStatus.FAILED)
        else:
            _finish(run, RunStatus.SUCCEEDED)
    log.info("backfill %s run %s ended %s", run.backfill, run.pk, run.status)
    return StepResult(Step.DONE, rows=rows, ms=elapsed_ms)


def _finish(run: BackfillRun, status: str) -> None:
    run.status = status
    run.finished_at = timezone.now()
    run.heartbeat_at = run.finished_at
    run.save(update_fields=["status", "finished_at", "heartbeat_at", "last_error"])
    run.events.create(action=status, detail=run.last_error)


def _batch_failed(run_id: int, generation: int, exc: Exception) -> StepResult:
    """Rolled back: halve the batch (a timeout often means it was too big), maybe fail."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    with transaction.atomic():
        run = BackfillRun.objects.select_for_update().get(pk=run_id)
        if run.generation != generation or run.status != RunStatus.RUNNING:
            return StepResult(Step.STOP)
        run.failed_attempts += 1
        run.batch_size = max(MIN_BATCH, run.batch_size // 2)
        run.last_error = error
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["failed_attempts", "batch_size", "last_error", "heartbeat_at"])
        if run.failed_attempts >= MAX_ATTEMPTS:
            _finish(run, RunStatus.FAILED)
            log.error("backfill %s run %s failed: %s", run.backfill, run.pk, error)
            return StepResult(Step.DONE, error=error)
    log.warning("backfill %s run %s batch failed, will retry: %s", run.backfill, run_id, error)
    return StepResult(Step.RETRY, error=error)


def dry_run(backfill: registry.Backfill, batch_size: int) -> tuple[int, int, float]:
    """Rows to do, and the rows and milliseconds of one sample batch, rolled back."""
    to_do = backfill.count_to_do()
    with transaction.atomic():
        _set_local_timeouts()
        started = time.perf_counter()
        _high, rows = _apply_range(backfill, None, batch_size)
        elapsed_ms = (time.perf_counter() - started) * 1000
        transaction.set_rollback(True)
    return to_do, rows, elapsed_ms
