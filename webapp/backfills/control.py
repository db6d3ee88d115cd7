"""Starting, pausing, resuming, cancelling and retrying runs, and setting the wait between
their batches: each a change in one transaction, recorded with who did it, with the
worker chain enqueued after commit."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backfills import registry
from backfills.models import ACTIVE, MAX_PAUSE_MS, BackfillRun, RunStatus
from events import queue

# Which statuses each action may start from.
ALLOWED_FROM = {
    "pause": (RunStatus.PENDING, RunStatus.RUNNING),
    "resume": (RunStatus.PAUSED,),
    "cancel": (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED),
    "retry": (RunStatus.FAILED,),
}


class ControlError(Exception):
    """The action does not apply to the run as it is (the message says why)."""


def _enqueue_after_commit(run: BackfillRun) -> None:
    queue.enqueue("jobs.backfills.run_slice", args=(run.pk, run.generation))


def _record(run: BackfillRun, action: str, user: Any, detail: str = "") -> None:
    run.events.create(
        action=action, user=user if getattr(user, "pk", None) else None, detail=detail
    )


def start(
    name: str,
    *,
    user: Any = None,
    batch_size: int | None = None,
    detail: str = "",
    enqueue: bool = True,
) -> BackfillRun:
    """Create a run and set workers on it. Only one run of a backfill may be active."""
    backfill = registry.get(name)
    total = backfill.count_to_do()
    try:
        with transaction.atomic():
            run = BackfillRun.objects.create(
                backfill=name,
                status=RunStatus.RUNNING if enqueue else RunStatus.PENDING,
                rows_total=total,
                batch_size=batch_size or settings.BACKFILL_BATCH_SIZE,
                target_batch_ms=settings.BACKFILL_TARGET_BATCH_MS,
                pause_ms=settings.BACKFILL_PAUSE_MS,
                generation=1,
                started_by=user if getattr(user, "pk", None) else None,
                started_at=timezone.now() if enqueue else None,
                heartbeat_at=timezone.now() if enqueue else None,
            )
            _record(run, "start" if enqueue else "record", user, detail)
            if enqueue:
                _enqueue_after_commit(run)
    except IntegrityError:
        raise ControlError(f"backfill {name!r} already has an active run") from None
    return run


def _transition(run_id: int, action: str, user: Any) -> BackfillRun:
    with transaction.atomic():
        run = BackfillRun.objects.select_for_update().get(pk=run_id)
        if run.status not in ALLOWED_FROM[action]:
            raise ControlError(f"cannot {action} run {run.pk}: it is {run.status}")
        if action == "pause":
            run.status = RunStatus.PAUSED
        elif action == "cancel":
            # A running chain finishes the cancel itself; with none running, it is immediate.
            run.status = (
                RunStatus.CANCELLING if run.status == RunStatus.RUNNING else RunStatus.CANCELLED
            )
            if run.status == RunStatus.CANCELLED:
                run.finished_at = timezone.now()
        else:  # resume, retry: a new generation takes over from the cursor
            run.status = RunStatus.RUNNING
            run.generation += 1
            run.failed_attempts = 0
            run.finished_at = None
            run.started_at = run.started_at or timezone.now()
            run.heartbeat_at = timezone.now()
            _enqueue_after_commit(run)
        run.save()
        _record(run, action, user)
    return run


def pause(run_id: int, *, user: Any = None) -> BackfillRun:
    return _transition(run_id, "pause", user)


def pause_all(*, detail: str = "") -> list[int]:
    """Pause every pending or running run; returns their ids. A restore does this, so no
    run moves from restored state until staff resume it."""
    with transaction.atomic():
        runs = list(
            BackfillRun.objects.select_for_update().filter(status__in=ALLOWED_FROM["pause"])
        )
        for run in runs:
            run.status = RunStatus.PAUSED
            run.save(update_fields=["status"])
            _record(run, "pause", None, detail)
    return [run.pk for run in runs]


def resume(run_id: int, *, user: Any = None) -> BackfillRun:
    return _transition(run_id, "resume", user)


def cancel(run_id: int, *, user: Any = None) -> BackfillRun:
    return _transition(run_id, "cancel", user)


def retry(run_id: int, *, user: Any = None) -> BackfillRun:
    return _transition(run_id, "retry", user)


def set_pause(run_id: int, pause_ms: int, *, user: Any = None) -> BackfillRun:
    """Change the wait between a run's batches. Only that column is written: the workers
    move the rest of the row meanwhile."""
    if not 0 <= pause_ms <= MAX_PAUSE_MS:
        raise ControlError(f"the pause must be from 0 to {MAX_PAUSE_MS} ms, got {pause_ms}")
    with transaction.atomic():
        run = BackfillRun.objects.select_for_update().get(pk=run_id)
        before, run.pause_ms = run.pause_ms, pause_ms
        run.save(update_fields=["pause_ms"])
        _record(run, "set pause", user, f"{before} ms -> {pause_ms} ms between batches")
    return run


def active_run(name: str) -> BackfillRun | None:
    return BackfillRun.objects.filter(backfill=name, status__in=ACTIVE).first()


def claim_pending(run_id: int) -> BackfillRun | None:
    """A run recorded by a migration (pending) is started by the first worker to see it."""
    with transaction.atomic():
        updated = BackfillRun.objects.filter(pk=run_id, status=RunStatus.PENDING).update(
            status=RunStatus.RUNNING,
            generation=1,
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )
        if not updated:
            return None
        run = BackfillRun.objects.get(pk=run_id)
        _record(run, "start", None, "picked up by a worker")
        _enqueue_after_commit(run)
    return run


def restart_stalled(run_id: int, stale_before: Any) -> BackfillRun | None:
    """A running run whose heartbeat stopped (its worker died): a new generation resumes."""
    with transaction.atomic():
        run = (
            BackfillRun.objects.select_for_update(skip_locked=True)
            .filter(pk=run_id, status__in=[RunStatus.RUNNING, RunStatus.CANCELLING])
            .filter(heartbeat_at__lt=stale_before)
            .first()
        )
        if run is None:
            return None
        run.generation += 1
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["generation", "heartbeat_at"])
        _record(run, "recover", None, "heartbeat went stale; re-enqueued from the cursor")
        _enqueue_after_commit(run)
    return run
