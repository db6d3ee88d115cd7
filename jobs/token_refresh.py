"""Keeping every SumUp connection alive: the sweep beat schedules, and the refresh of
one artist that workers run.

The sweep claims due artists with a conditional UPDATE (`sumup_refresh_enqueued_at`)
before enqueuing them, so two beats, or a sweep that overlaps the last one's backlog,
never queue the same artist twice. The refresh itself is guarded per artist by
`accounts.sumup.refresh`, so even a duplicated task makes one token call.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ArtistProfile
from accounts.sumup import refresh, refresh_alerts
from accounts.sumup.refresh import Outcome
from events import redis

log = logging.getLogger(__name__)

SWEEP_LOCK = "sumup:refresh:sweep-lock"
OUTCOMES_KEY = "sumup:refresh:outcomes"  # counts by outcome since the last sweep's log line
ENQUEUE_BATCH = 500  # artists claimed per short transaction
ENQUEUED_STALE = timedelta(minutes=15)  # a queued refresh not done by then is queued again
BACKOFF_BASE = 5.0  # seconds; doubles per attempt, with jitter
BACKOFF_CAP = 300.0  # seconds
# How far ahead a queued refresh may book its slot of the SumUp budget. It waits for it
# as a countdown, so this stays well inside the broker's visibility timeout (3600 s by
# default); a sweep's backlog longer than this asks again when the horizon moves on.
BOOK_AHEAD = 600.0  # seconds
ON_TIME = 0.005  # seconds: a booked slot this close is now


@dataclass
class SweepReport:
    enqueued: list[int] = field(default_factory=list)
    skipped: str = ""
    probe: int | None = None


def _backoff(attempt: int) -> float:
    delay: float = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
    return delay * random.uniform(0.5, 1.5)  # noqa: S311 (jitter, not security)


def _claim_batch(limit: int) -> list[int]:
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            refresh.due_profiles(now)
            .filter(
                Q(sumup_refresh_enqueued_at__isnull=True)
                | Q(sumup_refresh_enqueued_at__lt=now - ENQUEUED_STALE)
            )
            .order_by("sumup_expires_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            ArtistProfile.objects.filter(pk__in=ids).update(sumup_refresh_enqueued_at=now)
    return ids


def _enqueue(ids: list[int]) -> None:
    """Queue a refresh per artist, each for the paced slot of the SumUp budget it books
    here. Booked by the sweep, the slots are in the queue in their order; were each task
    to book its own when first run, the first slots would fall due while the queue still
    held the other tasks waiting to book."""
    with refresh_artist.app.producer_or_acquire() as producer:
        for profile_id in ids:
            slot = refresh.book_budget_slot(within=BOOK_AHEAD)
            # Beyond the horizon, the task books its slot when it runs.
            _queue(
                profile_id,
                wait=slot.wait if slot.held else 0.0,
                booked=slot.held,
                producer=producer,
            )


def _queue(
    profile_id: int,
    attempt: int = 0,
    probe: bool = False,
    *,
    wait: float,
    booked: bool,
    producer: Any = None,
) -> None:
    """Queue a refresh to run `wait` seconds from now; `booked`: as the holder of the
    budget's slot at that instant (see `refresh.booked_slot_usable`)."""
    at = time.time() + wait if booked else 0.0
    countdown = wait if wait > ON_TIME else 0.0
    refresh_artist.apply_async(
        (profile_id, attempt, probe, at), countdown=countdown, producer=producer
    )


def run_sweep(*, exclusive: bool = True) -> SweepReport:
    """Enqueue a refresh for every due artist; with `exclusive`, one sweep per interval."""
    interval = settings.SUMUP_REFRESH_SWEEP_INTERVAL
    if exclusive and not cache.add(SWEEP_LOCK, timezone.now().isoformat(), int(interval * 0.8)):
        return SweepReport(skipped="another sweep ran in this interval")
    report = SweepReport()
    if refresh_alerts.is_halted():
        probe = refresh.due_profiles().order_by("sumup_expires_at").values_list("pk", flat=True)
        report.probe = probe.first()
        if report.probe is not None:
            refresh_artist.delay(report.probe, probe=True)
        report.skipped = "halted: SumUp refuses the client credentials; probing one artist"
    else:
        while batch := _claim_batch(ENQUEUE_BATCH):
            _enqueue(batch)
            report.enqueued.extend(batch)
    _log_summary(report)
    return report


def _log_summary(report: SweepReport) -> None:
    pipe = redis.client().pipeline()
    pipe.hgetall(OUTCOMES_KEY)
    pipe.delete(OUTCOMES_KEY)
    counts = {key.decode(): int(value) for key, value in pipe.execute()[0].items()}
    since = " ".join(f"{name}={counts.get(name, 0)}" for name in Outcome)
    log.info(
        "SumUp refresh sweep: enqueued=%d%s; outcomes since last sweep: %s",
        len(report.enqueued),
        f" ({report.skipped})" if report.skipped else "",
        since,
    )


@shared_task(name="jobs.token_refresh.sweep", ignore_result=True, time_limit=300)
def sweep() -> int:
    """Beat's entry point: enqueue refreshes for every due artist."""
    return len(run_sweep().enqueued)


@shared_task(
    bind=True,
    name="jobs.token_refresh.refresh_artist",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=90,
    soft_time_limit=60,
)
def refresh_artist(  # type: ignore[no-untyped-def]
    self, profile_id: int, attempt: int = 0, probe: bool = False, booked: float = 0.0
) -> str:
    """Refresh one artist's SumUp tokens; safe to run twice (see accounts.sumup.refresh).

    It comes with a paced slot of the SumUp budget booked by the sweep (`booked`: the
    slot's time, epoch seconds) or books one first and, unless that slot is now,
    re-queues itself for it; over the budget's cap or after a transient failure it
    re-queues itself with a countdown too. It never sleeps.
    """
    if refresh_alerts.is_halted() and not probe:
        refresh.finished(profile_id)
        return Outcome.HALTED.value
    if not (booked and refresh.booked_slot_usable(booked)):
        slot = refresh.book_budget_slot(within=BOOK_AHEAD)
        if not slot.held or slot.wait > ON_TIME:
            _queue(profile_id, attempt, probe, wait=slot.wait, booked=slot.held)
            redis.client().hincrby(OUTCOMES_KEY, Outcome.OVER_BUDGET.value, 1)
            return Outcome.OVER_BUDGET.value
    result = refresh.refresh_profile(profile_id, only_if_due=not probe, bulk=True)
    redis.client().hincrby(OUTCOMES_KEY, result.outcome.value, 1)
    if result.outcome is Outcome.OVER_BUDGET:
        # Late for its slot, it found the share full. It books a slot of its own again:
        # coming back at a random instant instead, it would take the slot of another
        # refresh, late in turn, and on a busy machine that cascade takes over.
        slot = refresh.book_budget_slot(within=BOOK_AHEAD)
        _queue(profile_id, attempt, probe, wait=slot.wait, booked=slot.held)
    elif result.outcome is Outcome.RETRY:
        if attempt + 1 >= settings.SUMUP_REFRESH_MAX_ATTEMPTS:
            refresh.give_up(profile_id, result.error)
        else:
            countdown = result.retry_after or _backoff(attempt)
            self.apply_async((profile_id, attempt + 1, probe), countdown=countdown)
    elif result.outcome not in (Outcome.REFRESHED, Outcome.NOT_DUE):
        # A refresh clears the mark in its own write; NOT_DUE may mean another worker
        # holds the claim and will clear it.
        refresh.finished(profile_id)
    return result.outcome.value
