"""Workers run backfills as a chain of time-boxed slices, each a series of short batches.

A slice stops after SLICE_SECONDS and enqueues the next, so no task comes near the
broker's visibility timeout and pause/cancel take effect within a batch. Tasks use
`acks_late` with `reject_on_worker_lost`: a slice whose worker is killed is delivered
again, which is harmless because every batch checks the run's generation and cursor.
A run whose worker died without redelivery (or before it was ever picked up) is found by
`recover`, which beat runs every BACKFILLS_RECOVER_INTERVAL and each worker runs when it
starts.

While the database is out of reach the slice re-queues itself after a countdown that
doubles from OUTAGE_COUNTDOWN to OUTAGE_COUNTDOWN_CAP: the outage's count travels in the
task (the database cannot keep it), and the run resumes within seconds of the database's
return. A countdown that short never comes near the visibility timeout.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.utils import timezone

from backfills import control, engine
from backfills.models import BackfillRun, RunStatus
from events import task_limits
from jobs import options

log = logging.getLogger(__name__)

SLICE_SECONDS = 20.0  # of batches per task, then the chain continues in a new task
RETRY_COUNTDOWN = 5.0  # seconds before retrying a batch that failed
OUTAGE_COUNTDOWN = 1.0  # seconds before the first try after the database went out of reach
OUTAGE_COUNTDOWN_CAP = 10.0  # seconds: the longest wait between tries during an outage


def outage_countdown(outages: int) -> float:
    """Seconds before the next try after `outages` tries in a row found no database."""
    delay: float = min(OUTAGE_COUNTDOWN_CAP, OUTAGE_COUNTDOWN * 2 ** max(0, outages - 1))
    return delay


@shared_task(
    bind=True,
    name="jobs.backfills.run_slice",
    **options.at_least_once(task_limits.BACKFILL_SLICE),
)
def run_slice(self: Any, run_id: int, generation: int, outages: int = 0) -> str:
    """Run batches of one backfill run for up to SLICE_SECONDS, then chain the next slice.
    `outages`: how many tries in a row before this one found the database out of reach."""
    deadline = time.monotonic() + SLICE_SECONDS
    while time.monotonic() < deadline:
        result = engine.run_one_batch(run_id, generation)
        if result.step in (engine.Step.DONE, engine.Step.STOP):
            return str(result.step.value)
        if result.step is engine.Step.RETRY:
            self.apply_async((run_id, generation), countdown=RETRY_COUNTDOWN)
            return str(result.step.value)
        if result.step is engine.Step.UNREACHABLE:
            self.apply_async(
                (run_id, generation, outages + 1), countdown=outage_countdown(outages + 1)
            )
            return str(result.step.value)
        if result.pause_ms:
            # The pause between batches is a countdown on the next slice, never a sleep.
            self.apply_async((run_id, generation), countdown=result.pause_ms / 1000)
            return "paused_between_batches"
    self.apply_async((run_id, generation))
    return "continued"


@shared_task(name="jobs.backfills.recover", **options.at_most_once(task_limits.BACKFILL_RECOVER))
def recover() -> int:
    """Start runs recorded by migrations, and restart runs whose worker died."""
    restarted = 0
    for run_id in BackfillRun.objects.filter(status=RunStatus.PENDING).values_list("pk", flat=True):
        restarted += control.claim_pending(run_id) is not None
    stale_before = timezone.now() - timedelta(seconds=settings.BACKFILL_STALE_SECONDS)
    stalled = BackfillRun.objects.filter(
        status__in=[RunStatus.RUNNING, RunStatus.CANCELLING], heartbeat_at__lt=stale_before
    ).values_list("pk", flat=True)
    for run_id in stalled:
        restarted += control.restart_stalled(run_id, stale_before) is not None
    if restarted:
        log.warning("backfill recovery started or restarted %d run(s)", restarted)
    return restarted


@worker_ready.connect
def _recover_when_a_worker_starts(**kwargs: object) -> None:
    recover.delay()
