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

A data migration below the inline limit runs the same batches itself (`run_inline`), with
no run to record them on.

A connection lost mid-batch, or a database out of reach (stopped, restarting, the
network gone), is no fault of the batch and may leave nothing to record a failure with:
the batch answers UNREACHABLE with nothing written, and the caller tries again after a
short backoff without counting it as a failed attempt. Whatever the lost
connection did or did not commit, the cursor and the rows moved together, so the batch
after the outage starts exactly where the database says the run is.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass

import psycopg
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
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
# SQLSTATE classes of a connection that is gone: 08 (connection exception) and 57P
# (the server shutting down, crashed, or not yet accepting connections).
_CONNECTION_LOST_STATES = ("08", "57P")
STATEMENT_TIMEOUT_MS = 5_000


class Step(enum.Enum):
    CONTINUE = "continue"  # a batch committed; more to do
    DONE = "done"  # the run finished (succeeded, failed verification, or was cancelled)
    STOP = "stop"  # not ours to run: paused, cancelled elsewhere, or a newer generation
    RETRY = "retry"  # the batch failed and was rolled back; try again later
    UNREACHABLE = "unreachable"  # the database is out of reach: nothing recorded; try again


@dataclass(frozen=True)
class StepResult:
    step: Step
    rows: int = 0
    ms: float = 0.0
    error: str = ""
    pause_ms: int = 0  # the run's pause before its next batch, as read with this one


def next_batch_size(current: int, elapsed_ms: float, target_ms: int) -> int:
    """Steer toward the target duration: grow at most x1.5, shrink at most /2, clamped."""
    if elapsed_ms <= 0:
        return min(MAX_BATCH, int(current * 1.5))
    ratio = min(1.5, max(0.5, target_ms / elapsed_ms))
    return max(MIN_BATCH, min(MAX_BATCH, int(current * ratio)))


def _halved(size: int) -> int:
    """The size to try a failed batch again at: a timeout often means it was too big."""
    return max(MIN_BATCH, size // 2)


def _set_local_timeouts(using: str = DEFAULT_DB_ALIAS) -> None:
    if connections[using].vendor == "postgresql":
        with connections[using].cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            # The cursor commits with the rows, so a commit lost in a crash only means the
            # batch runs again; not waiting for the WAL flush saves ~3 ms per batch.
            cursor.execute("SET LOCAL synchronous_commit = off")


def _apply_batch(
    backfill: registry.Backfill, rows: registry.Rows, cursor: int | None, size: int
) -> tuple[int | None, int]:
    """The batch step, in the caller's transaction: its timeouts, then the backfill applied
    to the pending rows among the next `size` keys after `cursor`."""
    _set_local_timeouts(rows.db)
    return apply_next_range(rows, backfill.pending, backfill.apply, cursor, size)


def run_one_batch(run_id: int, generation: int) -> StepResult:
    """Do the next batch of a running run, if `generation` still owns it."""
    try:
        return _run_one_batch(run_id, generation)
    except (OperationalError, InterfaceError) as exc:
        # The connection is gone, or the failure could not be recorded without one.
        log.warning(
            "backfill run %s: no database connection (%s), will retry", run_id, type(exc).__name__
        )
        return StepResult(Step.UNREACHABLE, error=f"no database connection: {type(exc).__name__}")


def _run_one_batch(run_id: int, generation: int) -> StepResult:
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
            backfill = registry.get(run.backfill)
            low = run.cursor
            high, rows = _apply_batch(backfill, backfill.all_rows(), low, run.batch_size)
            elapsed_ms = (time.perf_counter() - started) * 1000
            BackfillBatch.objects.create(
                run=run, low=low if low is not None else 0, high=high, rows=rows, ms=elapsed_ms
            )
            _record_batch(run, high, rows, elapsed_ms)
            pause_ms = run.pause_ms
    except (DatabaseError, LookupError) as exc:
        if _connection_lost(exc):
            raise  # not the batch's fault: not counted, and maybe nothing to record it with
        return _batch_failed(run_id, generation, exc)
    if high is None:
        return _complete(run_id, generation, rows, elapsed_ms)
    return StepResult(Step.CONTINUE, rows=rows, ms=elapsed_ms, pause_ms=pause_ms)


def _connection_lost(exc: BaseException) -> bool:
    """Whether `exc` says the connection is gone (the server stopped, restarted or cut
    it, or never answered) rather than that the batch failed on it (a timeout, a lock)."""
    if isinstance(exc, InterfaceError):
        return True
    cause = exc.__cause__ if isinstance(exc, OperationalError) else None
    if not isinstance(cause, psycopg.OperationalError):
        return False
    return cause.sqlstate is None or cause.sqlstate.startswith(_CONNECTION_LOST_STATES)


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
    """Rolled back: halve the batch (a timeout often means it was too big), maybe fail.
    Raises the database's error when the failure cannot be recorded."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    with transaction.atomic():
        run = BackfillRun.objects.select_for_update().get(pk=run_id)
        if run.generation != generation or run.status != RunStatus.RUNNING:
            return StepResult(Step.STOP)
        run.failed_attempts += 1
        run.batch_size = _halved(run.batch_size)
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
        started = time.perf_counter()
        _high, rows = _apply_batch(backfill, backfill.all_rows(), None, batch_size)
        elapsed_ms = (time.perf_counter() - started) * 1000
        transaction.set_rollback(True)
    return to_do, rows, elapsed_ms


def run_inline(backfill: registry.Backfill, rows: registry.Rows, batch_size: int) -> int:
    """Run `backfill` over `rows` to the end of their table, here and now, and record no
    run: a run's batches (one short transaction each, with its timeouts, over the next key
    range) at a fixed `batch_size`. For a data migration below the inline limit, given its
    historical model's rows on its database. Returns the rows changed.

    A batch that fails is rolled back and tried again at half the size; after
    MAX_ATTEMPTS failures in a row, or a lost connection, the error is raised, and running
    again resumes, since a row done is never pending again. The caller holds no
    transaction open (a migration sets `atomic = False`): each batch commits on its own.
    """
    using = rows.db
    cursor: int | None = None
    size, failures, changed, batches = batch_size, 0, 0, 0
    while True:
        try:
            with transaction.atomic(using=using):
                high, done = _apply_batch(backfill, rows, cursor, size)
        except DatabaseError as exc:
            failures += 1
            if failures >= MAX_ATTEMPTS or _connection_lost(exc):
                raise
            log.warning("backfill %s inline batch failed, will retry: %s", backfill.name, exc)
            size = _halved(size)
            continue
        failures, size = 0, batch_size
        changed += done
        batches += 1
        if high is None:
            break
        cursor = high
    log.debug("backfill %s ran inline: %d rows in %d batches", backfill.name, changed, batches)
    return changed
