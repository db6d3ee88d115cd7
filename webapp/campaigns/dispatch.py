"""Feeding a running campaign's sends to the workers at its rate, and recovering from
workers that died.

One chain per campaign: `tick` runs as a task, hands the next due recipients to the
queue and re-queues itself `TICK_SECONDS` later. Only the task carrying the campaign's
current `dispatch_token` may feed it, and each tick writes a heartbeat; `kick` starts a
new chain (a new token, so an old chain that comes back stops) when none is alive.

Sends are handed out on an even schedule a little below what the limiter grants
(campaigns.rate), each queued for its own due time (`dispatch_next_at` carrying the
schedule from tick to tick). Due times are instants, not countdowns from the tick's
start: a tick slowed by a busy machine hands out its sends later, but never shifts the
schedule, so its sends neither pile onto the next tick's nor leave a gap. The limiter
(campaigns.sending) is what guarantees the rate; the schedule keeps the sends from all
arriving at it at once, which would have nearly every one of them refused and handed
back.

Only about `LOOKAHEAD_SECONDS` of sends are queued at a time, so pause and cancel act
within seconds and no countdown ever comes near the broker's visibility timeout (Redis
redelivers an unacknowledged task after `CELERY_VISIBILITY_TIMEOUT`, 3600 s by default;
every countdown here is a few seconds, every campaign task's hard time limit a minute).

Sends whose tasks went with a dead worker would wait for that redelivery; beat's
`recover` hands them out again instead: those unclaimed for `CAMPAIGNS_REDISPATCH_AFTER`,
and all of a campaign that has stalled (campaigns.progress) under a new chain. A send
whose worker died after claiming it is settled with the provider's log
(campaigns.reconcile): `sent` if the provider took it, queued again (same idempotency
key) if it did not, `unknown` for staff when that cannot be known in time; a queued-again
send is handed out by the campaign's chain, which `recover` starts if none is alive.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns import batching, provider, reconcile
from campaigns import rate as rates
from campaigns.models import Campaign, CampaignAction, Recipient
from campaigns.progress import progress
from campaigns.reconcile import Outcome
from events import queue
from events.durations import roughly

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # from one tick's start to the next's
# How far ahead sends are handed out: a tick that runs this late on a busy machine
# still finds the schedule fed.
LOOKAHEAD_SECONDS = 3.0
MIN_IN_FLIGHT = 10
# Room beyond the lookahead: sends handed out whose tasks run late on a busy machine
# still count as in flight, and must not starve the schedule.
IN_FLIGHT_SPARE_SECONDS = 2.0
# Sends kept queued when the campaign has no rate: a tick's worth of what the workers
# can send, one request for many (campaigns.sending), or one request each.
UNLIMITED_IN_FLIGHT = 6000
UNLIMITED_IN_FLIGHT_ONE_BY_ONE = 1000
# Sends per task without a rate: a few requests' worth for a provider that takes
# batches, so that every worker has some; else fewer tasks, and database connections,
# per email.
UNLIMITED_BATCH = 500
MAX_BATCH = 25
# Under a rate, with batches: a task carries this share of a second of the rate, so
# the requests go out as evenly as the slots free.
RATE_BATCH_SECONDS = 0.1
CHAIN_STALE = timedelta(seconds=30)  # a chain silent this long is replaced

ACTIVE = (Recipient.Status.QUEUED, Recipient.Status.SENDING)


@dataclass
class Recovery:
    lost_claims: int = 0  # lapsed claims settled: the next three together
    confirmed_sent: int = 0  # the provider had taken the message: now sent
    sent_again: int = 0  # it had not: queued to be sent again under the same key
    marked_unknown: int = 0
    unconfirmed: int = 0  # still sending: the provider is asked again at the next run
    redispatched: int = 0
    kicked: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    unstalled: list[int] = field(default_factory=list)  # stalled: sends handed out again


def redispatch_after() -> timedelta:
    """A handed-out row still queued after this is handed out again."""
    return timedelta(seconds=settings.CAMPAIGNS_REDISPATCH_AFTER)


def per_second(campaign: Campaign) -> float | None:
    rate = campaign.rate
    return None if rate is None else rate.amount / rate.get_expiry()


def send_interval(campaign: Campaign) -> float:
    """Seconds between the sends handed out; 0.0 without a rate."""
    rate = campaign.rate
    return 0.0 if rate is None else rates.send_interval(rate, batch_size(campaign))


def batch_size(campaign: Campaign) -> int:
    """Sends per task.

    With a provider that takes batches, a task's sends go out in one request and take
    their slots together: under a rate about a tenth of a second of it (never more than
    `batching.most_per_request`), the size that wastes least of the rate's amount (a
    window holds only whole requests: 5 at 50/s, 10 at 100/s), so the gaps between
    requests stay small. One request each, a task's sends go back to back, so under a
    rate a batch is at most the slots the schedule leaves free in the limiter's window
    (1 below 207/s, 4 at 1000/s): a bigger bunch would fill that window and make the
    schedule wait."""
    rate = campaign.rate
    if provider.can_batch():
        if rate is None:
            return UNLIMITED_BATCH
        most = batching.most_per_request(campaign)
        target = max(1, min(most, math.floor(rate.amount / rate.get_expiry() * RATE_BATCH_SECONDS)))
        return max(range(1, target + 1), key=lambda size: (rate.amount // size * size, size))
    if rate is None:
        return MAX_BATCH
    spare = rates.SCHEDULE_ALLOWANCE / rates.send_interval(rate)
    return max(1, min(MAX_BATCH, math.floor(spare + 1e-9)))


def in_flight_target(campaign: Campaign) -> int:
    rate = per_second(campaign)
    if rate is None:
        return UNLIMITED_IN_FLIGHT if provider.can_batch() else UNLIMITED_IN_FLIGHT_ONE_BY_ONE
    return MIN_IN_FLIGHT + math.ceil(rate * (LOOKAHEAD_SECONDS + IN_FLIGHT_SPARE_SECONDS))


def _has_work() -> Exists:
    return Exists(Recipient.objects.filter(campaign=OuterRef("pk"), status__in=ACTIVE))


def kick(campaign_id: int, *, now: datetime | None = None) -> bool:
    """Start a dispatch chain for a running campaign unless a live one feeds it."""
    now = now or timezone.now()
    token = str(uuid.uuid4())
    started = (
        Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.RUNNING)
        .filter(Q(dispatch_heartbeat__isnull=True) | Q(dispatch_heartbeat__lt=now - CHAIN_STALE))
        .update(dispatch_token=token, dispatch_heartbeat=now)
    )
    if started:
        _enqueue_tick(campaign_id, token)
    return bool(started)


def restart(campaign_id: int) -> None:
    """Replace whatever chain feeds the campaign (on start and resume)."""
    token = str(uuid.uuid4())
    Campaign.objects.filter(pk=campaign_id).update(
        dispatch_token=token, dispatch_heartbeat=timezone.now()
    )
    _enqueue_tick(campaign_id, token)


def tick(campaign_id: int, token: str) -> float | None:
    """Hand out the next sends; the seconds until the next tick (`TICK_SECONDS` after
    this one's start), or None to stop."""
    now = timezone.now()
    alive = Campaign.objects.filter(
        pk=campaign_id, dispatch_token=token, status=Campaign.Status.RUNNING
    ).update(dispatch_heartbeat=now)
    if not alive:
        return None
    campaign = Campaign.objects.get(pk=campaign_id)
    batch = batch_size(campaign)
    ids, due = _hand_out(campaign, now, batch)
    if ids:
        enqueue_sends(ids, due, batch=batch)
    elif not campaign.recipients.filter(status__in=ACTIVE).exists():
        Campaign.objects.filter(pk=campaign_id, dispatch_token=token).update(
            dispatch_token="", dispatch_heartbeat=None
        )
        if not campaign.automatic:  # the standing campaign waits for the next notice
            finish(campaign_id, now=now)
        return None
    return max(0.0, TICK_SECONDS - (timezone.now() - now).total_seconds())


def _hand_out(
    campaign: Campaign, now: datetime, batch: int
) -> tuple[list[int], list[datetime] | None]:
    """The recipients to queue now, in whole batches of `batch` (the room for a whole
    one frees within a tick), and under a rate the instant each is due."""
    rows = campaign.recipients
    fresh = now - redispatch_after()
    in_flight = rows.filter(
        Q(status=Recipient.Status.SENDING)
        | Q(status=Recipient.Status.QUEUED, dispatched_at__gte=fresh)
    ).count()
    room = in_flight_target(campaign) - in_flight
    interval = send_interval(campaign)
    first = max(now, campaign.dispatch_next_at or now)
    if interval:
        ahead = (now - first).total_seconds() + LOOKAHEAD_SECONDS
        room = min(room, math.floor(ahead / interval))
    room -= room % batch  # the schedule spaces whole batches; the last may be short
    if room <= 0:
        return [], None
    with transaction.atomic():
        ids = list(
            rows.filter(status=Recipient.Status.QUEUED)
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=fresh))
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:room]
        )
        if ids:
            Recipient.objects.filter(pk__in=ids).update(dispatched_at=now)
    if not interval:
        return ids, None
    Campaign.objects.filter(pk=campaign.pk).update(
        dispatch_next_at=first + timedelta(seconds=len(ids) * interval)
    )
    return ids, [first + timedelta(seconds=i * interval) for i in range(len(ids))]


def finish(campaign_id: int, *, now: datetime | None = None) -> bool:
    """Mark a running campaign done once no recipient is queued or sending."""
    now = now or timezone.now()
    done = (
        Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.RUNNING, automatic=False)
        .exclude(_has_work())
        .update(status=Campaign.Status.DONE, finished_at=now, dispatch_token="")
    )
    if done:
        counts = Campaign.objects.get(pk=campaign_id).counts()
        summary = ", ".join(f"{status} {n}" for status, n in counts.items() if n)
        CampaignAction.record(campaign_id, CampaignAction.Action.FINISHED, detail=summary)
    return bool(done)


def recover(now: datetime | None = None) -> Recovery:
    """Beat's safety net: lapsed claims are settled with the provider, lost hand-outs are
    handed out again, every running campaign with work left has a live chain, and a
    stalled one a new chain with all its sends handed out again."""
    now = now or timezone.now()
    report = Recovery()
    running: QuerySet[Campaign] = Campaign.objects.filter(status=Campaign.Status.RUNNING)
    # Judged before the claims below are settled: that settling is not progress.
    stalled = {
        campaign.pk: silent
        for campaign in running.filter(_has_work())
        if (silent := progress(campaign, now=now).no_progress_seconds) is not None
    }
    _settle_lost_claims(now, report)
    report.redispatched = Recipient.objects.filter(
        status=Recipient.Status.QUEUED, dispatched_at__lt=now - redispatch_after()
    ).update(dispatched_at=None)
    for campaign_id, silent in stalled.items():
        unstall(campaign_id, silent)
        report.unstalled.append(campaign_id)
    for campaign_id in running.filter(_has_work()).values_list("pk", flat=True):
        if campaign_id not in stalled and kick(campaign_id, now=now):
            report.kicked.append(campaign_id)
    for campaign_id in running.exclude(_has_work()).values_list("pk", flat=True):
        if finish(campaign_id, now=now):
            report.finished.append(campaign_id)
    return report


def _settle_lost_claims(now: datetime, report: Recovery) -> None:
    settled = reconcile.settle_lapsed_claims(now)
    report.confirmed_sent = settled.total(Outcome.SENT)
    report.sent_again = settled.total(Outcome.REQUEUED)
    report.marked_unknown = settled.total(Outcome.UNKNOWN)
    report.unconfirmed = settled.total(Outcome.WAITING)
    report.lost_claims = report.confirmed_sent + report.sent_again + report.marked_unknown
    for campaign_id, counts in settled.by_campaign.items():
        if counts.total() == counts[Outcome.WAITING]:
            continue  # nothing settled yet: recorded once it is
        waiting = (
            f", {counts[Outcome.WAITING]} still unconfirmed" if counts[Outcome.WAITING] else ""
        )
        CampaignAction.record(
            campaign_id,
            CampaignAction.Action.RECOVERED,
            detail=f"worker died mid-send: {counts[Outcome.SENT]} sent per the provider, "
            f"{counts[Outcome.REQUEUED]} handed out again, "
            f"{counts[Outcome.UNKNOWN]} marked unknown{waiting}",
        )
    if report.lost_claims or report.unconfirmed:
        log.warning(
            "campaigns: sends lost with their worker: %d sent per the provider, %d handed "
            "out again, %d now unknown, %d still unconfirmed",
            report.confirmed_sent,
            report.sent_again,
            report.marked_unknown,
            report.unconfirmed,
        )


def unstall(campaign_id: int, silent_seconds: int) -> None:
    """Hand out again every send of a stalled campaign that was handed out and not
    claimed, under a new chain: whatever held them (a dead worker's unacknowledged
    tasks, a chain that stopped) no longer does. A send that still turns up later finds
    its row claimed or done and does nothing."""
    with transaction.atomic():
        again = Recipient.objects.filter(
            campaign_id=campaign_id, status=Recipient.Status.QUEUED, dispatched_at__isnull=False
        ).update(dispatched_at=None)
        restart(campaign_id)
        CampaignAction.record(
            campaign_id,
            CampaignAction.Action.RECOVERED,
            detail=f"no progress for {roughly(silent_seconds)}: "
            f"{again} send(s) handed out again by a new dispatch chain",
        )
    log.warning(
        "campaign %s: no progress for %d s, %d send(s) handed out again",
        campaign_id,
        silent_seconds,
        again,
    )


def enqueue_sends(ids: list[int], due: list[datetime] | None = None, batch: int = 1) -> None:
    """Queue send tasks for these recipients, `batch` to a task, once the current
    transaction commits; each task at the instant its first recipient is `due` (at once
    without one, or once that instant has passed)."""
    queue.enqueue_many(
        "jobs.campaigns.send",
        [
            ((ids[start : start + batch],), {} if due is None else {"eta": due[start]})
            for start in range(0, len(ids), batch)
        ],
    )


def _enqueue_tick(campaign_id: int, token: str) -> None:
    queue.enqueue("jobs.campaigns.dispatch_tick", args=(campaign_id, token))
