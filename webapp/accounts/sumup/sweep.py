"""Keeping every SumUp connection alive: the sweep beat schedules, and the dispatcher that
hands out its work a few seconds at a time. Each refresh they queue is run by a worker
as accounts.sumup.queued_refresh says.

Who is due, and when, is the refresh policy's (accounts.sumup.refresh_policy): each row
carries its next refresh, and the sweep reads only rows whose time has come, oldest
first, through a partial index. Due artists are claimed with a conditional UPDATE
(`sumup_refresh_enqueued_at`) before they are queued, so two beats, or a sweep that
overlaps the dispatcher, never queue the same artist twice. The refresh itself is
guarded per artist by `accounts.sumup.refresh`, so even a duplicated task makes one
token call.

No refresh waits in a worker for longer than `LOOKAHEAD`: a countdown is held in the
worker's memory (and in Redis's unacked set until the visibility timeout, should the
worker die), so only the paced slots of the next few seconds are handed out at a time.
The dispatcher (one chain of `DISPATCH_TASK` tasks at a time, under a lease in Redis)
comes back every `DISPATCH_EVERY` seconds for the next ones while due work is left or
falls due within `LOOKAHEAD` (so an artist is queued as its time comes, not at the next
sweep); a longer wait, such as a retry's backoff, is a time in the row (`refresh.defer`). A queued
refresh whose queue entry is gone (Redis lost it, or its worker died holding it) is
queued again once its mark is older than half the sweep interval: by the next sweep, or
sooner by the dispatcher.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import ArtistProfile
from accounts.sumup import refresh, refresh_alerts, refresh_outcomes, refresh_policy
from accounts.sumup.refresh import Outcome
from events import queue, shared_redis

log = logging.getLogger(__name__)

REFRESH_TASK = "jobs.token_refresh.refresh_artist"  # one artist's refresh (queued_refresh)
DISPATCH_TASK = "jobs.token_refresh.dispatch"  # one round of the dispatcher
SWEEP_LOCK = "sumup:refresh:sweep-lock"
ENQUEUE_BATCH = 500  # artists claimed per short transaction, at most
# How far ahead a queued refresh may book its slot of the SumUp budget, and so the
# longest it waits in a worker as a countdown.
LOOKAHEAD = 5.0  # seconds
# Seconds between the dispatcher's rounds: each books and queues about this much of the
# budget's slots, a short burst of work in a worker that other refreshes wait behind.
DISPATCH_EVERY = 1.0
# No slot is booked sooner than this from now: the time a queued refresh takes to reach a
# worker, so that the first slots of a round are not already late when their task runs
# (late refreshes bunch, and the share refuses what bunches past it).
DELIVERY_LEAD = 0.25  # seconds
DISPATCHER_KEY = "sumup:refresh:dispatcher"
# A dispatcher not heard from for this long is dead (its worker died, or Redis lost its
# task): the next sweep, or a refresh handing its artist back, starts another.
DISPATCHER_LEASE = 4 * LOOKAHEAD  # seconds
ON_TIME = 0.005  # seconds: a booked slot this close is now
# Rows without a next refresh scheduled per statement, and the seconds a sweep spends
# on them at most (`schedule_unscheduled`).
SCHEDULE_BATCH = 10_000
SCHEDULE_SECONDS = 1.0

# Lease changes that hold only for the chain that holds the lease.
_RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_END_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass
class SweepReport:
    enqueued: list[int] = field(default_factory=list)
    skipped: str = ""
    probe: int | None = None
    more_due: bool = False  # left for the dispatcher's next rounds
    from_journal: int = 0  # answers stored from the refresh journal
    scheduled: int = 0  # rows given their first next refresh (`schedule_unscheduled`)


@dataclass(frozen=True)
class Round:
    """What one round of the dispatcher did: how many refreshes it queued, and whether
    due work is left, so the chain comes back in `DISPATCH_EVERY` seconds."""

    queued: int
    more: bool


@dataclass(frozen=True)
class Requeue:
    """A refresh to queue (`REFRESH_TASK`): its arguments, and the seconds it waits."""

    args: tuple[Any, ...]
    countdown: float = 0.0


def booked(profile_id: int, attempt: int = 0, probe: bool = False, *, wait: float) -> Requeue:
    """A refresh to run `wait` seconds from now, as the holder of the budget's slot
    booked for that instant."""
    at = time.time() + wait
    countdown = wait if wait > ON_TIME else 0.0
    return Requeue((profile_id, attempt, probe, at), countdown)


def stale_after() -> timedelta:
    """A queued refresh marked longer ago than this has lost its queue entry: it is
    queued again. Half the sweep interval, so the first sweep after a loss re-queues
    it; a refresh still under way then only finds the artist claimed or refreshed."""
    return timedelta(seconds=settings.SUMUP_REFRESH_SWEEP_INTERVAL / 2)


def _claimable(now: datetime, due_by: datetime | None = None) -> QuerySet[ArtistProfile]:
    """Artists due by `due_by` (now by default) that no refresh has queued or holds."""
    return (
        refresh.due_profiles(due_by or now)
        .filter(
            Q(sumup_refresh_enqueued_at__isnull=True)
            | Q(sumup_refresh_enqueued_at__lt=now - stale_after())
        )
        # Held by a refresh under way, or backing off until then (`refresh.defer`).
        .filter(
            Q(sumup_refresh_claimed_until__isnull=True) | Q(sumup_refresh_claimed_until__lt=now)
        )
    )


def _more_to_come() -> bool:
    """Whether the chain comes back: artists fall due within `LOOKAHEAD` (its next round
    queues them as they do, where the next sweep could be an interval away), or wait out
    a retry's backoff (`refresh.defer`), which the dispatcher queues when it ends."""
    now = timezone.now()
    soon = _claimable(now, due_by=now + timedelta(seconds=LOOKAHEAD)).exists()
    return soon or refresh.backing_off(now).exists()


def _claim_batch(limit: int) -> tuple[list[int], datetime]:
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            _claimable(now)
            .order_by("sumup_refresh_due_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            ArtistProfile.objects.filter(pk__in=ids).update(sumup_refresh_enqueued_at=now)
    return ids, now


def _unclaim(ids: list[int], mark: datetime) -> None:
    ArtistProfile.objects.filter(pk__in=ids, sumup_refresh_enqueued_at=mark).update(
        sumup_refresh_enqueued_at=None
    )


def _enqueue(ids: list[int]) -> list[int]:
    """Queue a refresh per artist, each for the paced slot of the SumUp budget it books
    here, while slots are free within `LOOKAHEAD`; returns the artists left without one.
    Booked by the dispatcher, the slots are in the queue in their order; were each task
    to book its own when first run, the first slots would fall due while the queue still
    held the other tasks waiting to book."""
    waits = refresh.book_budget_slots(len(ids), within=LOOKAHEAD, lead=DELIVERY_LEAD)
    refreshes = [booked(pk, wait=wait) for pk, wait in zip(ids, waits, strict=False)]
    queue.enqueue_many(REFRESH_TASK, [(r.args, {"countdown": r.countdown}) for r in refreshes])
    return ids[len(waits) :]


def _dispatch_round() -> tuple[list[int], bool]:
    """Queue the due refreshes that the free paced slots of the next `LOOKAHEAD` seconds
    hold. Returns who was queued, and whether due work is left for another round."""
    queued: list[int] = []
    while True:
        room = refresh.free_budget_slots(within=LOOKAHEAD, lead=DELIVERY_LEAD)
        if not room:
            return queued, _more_to_come()
        # Claimed only as many as the free slots hold: the rest stay claimable by
        # the next round without being marked and unmarked in between.
        ids, mark = _claim_batch(min(ENQUEUE_BATCH, room))
        if not ids:
            return queued, _more_to_come()
        left = _enqueue(ids)
        queued.extend(ids[: len(ids) - len(left)])
        if left:  # another booking took slots in between
            _unclaim(left, mark)
            return queued, True


def _take_lease() -> str | None:
    lease = uuid.uuid4().hex
    taken = shared_redis.client().set(
        DISPATCHER_KEY, lease, nx=True, px=int(DISPATCHER_LEASE * 1000)
    )
    return lease if taken else None


def _lease_call(script: str, lease: str) -> bool:
    call = shared_redis.client().register_script(script)
    return bool(call(keys=[DISPATCHER_KEY], args=[lease, int(DISPATCHER_LEASE * 1000)]))


def _round_under(lease: str) -> tuple[list[int], bool]:
    """One round under `lease`; the lease ends with the chain, when no due work is left."""
    queued, more = _dispatch_round()
    if not more:
        _lease_call(_END_SCRIPT, lease)
    return queued, more


def _start_chain(lease: str) -> None:
    queue.enqueue(DISPATCH_TASK, args=(lease,), countdown=DISPATCH_EVERY)


def ensure_dispatcher() -> None:
    """Start a dispatcher unless one is at work."""
    lease = _take_lease()
    if lease is not None:
        _start_chain(lease)


def dispatch_round(lease: str) -> Round:
    """A round of the dispatcher: queue the next `LOOKAHEAD` seconds of due refreshes;
    the chain comes back while due work is left. A chain whose lease lapsed (another
    took over) stops; so does one while refresh is halted (the sweep probes instead)."""
    if not _lease_call(_RENEW_SCRIPT, lease):
        return Round(queued=0, more=False)
    if refresh_alerts.is_halted():
        _lease_call(_END_SCRIPT, lease)
        return Round(queued=0, more=False)
    queued, more = _round_under(lease)
    return Round(queued=len(queued), more=more)


def run_sweep(*, exclusive: bool = True) -> SweepReport:
    """Store answers left in the refresh journal, then queue the due artists of the next
    `LOOKAHEAD` seconds and leave the rest to the dispatcher it starts; with `exclusive`,
    one sweep per interval."""
    interval = settings.SUMUP_REFRESH_SWEEP_INTERVAL
    if exclusive and not cache.add(SWEEP_LOCK, timezone.now().isoformat(), int(interval * 0.8)):
        return SweepReport(skipped="another sweep ran in this interval")
    report = SweepReport(from_journal=refresh.apply_journals())
    report.scheduled = schedule_unscheduled()
    if refresh_alerts.is_halted():
        probe = refresh.due_profiles().order_by("sumup_refresh_due_at").values_list("pk", flat=True)
        report.probe = probe.first()
        if report.probe is not None:
            queue.enqueue(REFRESH_TASK, args=(report.probe,), kwargs={"probe": True})
        report.skipped = "halted: SumUp refuses the client credentials; probing one artist"
    elif (lease := _take_lease()) is None:
        report.skipped = "the dispatcher is handing out due refreshes"
    else:
        report.enqueued, report.more_due = _round_under(lease)
        if report.more_due:
            _start_chain(lease)
    _log_summary(report)
    return report


def schedule_unscheduled(budget: float = SCHEDULE_SECONDS) -> int:
    """Give refreshable rows written without a next refresh their first one
    (refresh_policy.legacy_due_at), `SCHEDULE_BATCH` at a time for at most `budget`
    seconds: a table migrated with a million connections is scheduled over a few sweeps,
    none of them long. Returns how many rows were scheduled."""
    started = time.monotonic()
    scheduled = 0
    while True:
        now = timezone.now()
        ids = list(
            refresh_policy.unscheduled_rows(ArtistProfile.objects.all())
            .order_by("pk")
            .values_list("pk", flat=True)[:SCHEDULE_BATCH]
        )
        if not ids:
            return scheduled
        scheduled += refresh_policy.unscheduled_rows(
            ArtistProfile.objects.filter(pk__in=ids)
        ).update(sumup_refresh_due_at=refresh_policy.legacy_due_at(now))
        if len(ids) < SCHEDULE_BATCH or time.monotonic() - started > budget:
            return scheduled


def _log_summary(report: SweepReport) -> None:
    counts = refresh_outcomes.take()
    since = " ".join(f"{name}={counts.get(name, 0)}" for name in Outcome)
    log.info(
        "SumUp refresh sweep: enqueued=%d%s%s%s%s; outcomes since last sweep: %s",
        len(report.enqueued),
        " (more to the dispatcher)" if report.more_due else "",
        f" ({report.skipped})" if report.skipped else "",
        f"; stored from the journal={report.from_journal}" if report.from_journal else "",
        f"; scheduled={report.scheduled}" if report.scheduled else "",
        since,
    )
