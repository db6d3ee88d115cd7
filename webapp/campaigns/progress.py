"""A campaign's progress as staff watch it: counts from the recipient table, the rate
of the last few seconds, when it should be done at the pace it keeps, and whether it has
stalled.

A running campaign with sends due has stalled when no recipient has moved (claimed,
sent, retried, failed, skipped) for longer than `stall_after`. Beat's recovery hands a
stalled campaign's sends out again (campaigns.dispatch.recover) and the admin shows it
with the time since it last moved: both go by `progress` here, so they always agree. A
claim whose worker died (lapsed, still `sending`) is not a send due: recovery is
settling it with the provider (campaigns.reconcile), and no new chain would move it.

All the figures come from one grouped pass over the campaign's recipients (the pass
`Campaign.counts` makes, on the campaign/status index) and one over its actions; a
draft's, from the audience it would email now.

`Progress.as_dict()` is the one payload every view of it renders: the progress page's
first render and its poll (progress.json) place the same fields by the same rules, its
texts already written here, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns import audience
from campaigns.models import Campaign, CampaignAction, Recipient
from events.durations import roughly
from events.rate_limits import PACE_SHARE

RATE_WINDOW = timedelta(seconds=10)  # the current rate is measured over this
# The ETA's pace: recipients done over this window, or since the campaign last started
# or resumed if that is later (a pause would drag the pace down). Never measured over
# less than RATE_WINDOW, so the first seconds' few sends do not promise a rate.
ETA_WINDOW = timedelta(seconds=60)
# A slow campaign is not stalled between two sends: it may go this many of its send
# intervals without moving before it counts as stalled.
STALL_SENDS = 3
S = Recipient.Status
A = CampaignAction.Action
# Every status a row reaches only after the provider accepted its message.
SENT_OR_LATER = (S.SENT, S.DELIVERED, S.BOUNCED, S.COMPLAINED, S.UNSUBSCRIBED)
ACTIVE = (S.QUEUED, S.SENDING)
STARTS = (A.STARTED, A.RESUMED)
# Actions after which a campaign has work to move again: the time without progress
# counts from the latest (a recovery is not one: it has not moved anything yet).
RESTARTS = (*STARTS, A.RESENT, A.REQUEUED)


# The statuses a campaign may still leave on its own or by staff: its page keeps polling.
LIVE = (Campaign.Status.RUNNING, Campaign.Status.PAUSED)
NO_FIGURE = "—"


def status_words(status: str) -> str:
    """A status as staff read it: "Finished", where the stored value says done."""
    return "Finished" if status == Campaign.Status.DONE else Campaign.Status(status).label


def counted(n: int, noun: str) -> str:
    """A count with its noun: "1 email", "3 emails"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True)
class Progress:
    status: str
    # The status as staff read it, e.g. "Stalled — no progress for 4 min", "Finished".
    state: str
    total: int
    sent: int
    failed: int
    skipped: int
    unknown: int
    remaining: int
    by_status: dict[str, int]
    rate_per_second: float  # sends over the last RATE_WINDOW
    done_per_second: float  # recipients done, the ETA's pace (see ETA_WINDOW)
    configured_rate: str
    eta_seconds: int | None
    stalled: bool
    no_progress_seconds: int | None  # when stalled: since a recipient last moved
    # The share of the emails to send (recipients less those skipped) that is done, as
    # the bar shows it; None for no bar: a draft has not begun, and what a cancelled
    # campaign skipped was never done.
    bar: float | None
    would_email: int | None  # a draft: the artists it would email if started now
    # The changes offered to the reader now: those the status allows that they may make
    # (set by the admin, `offering`; none otherwise).
    actions: tuple[str, ...] = ()

    @property
    def done_fraction(self) -> float:
        return 1.0 if self.total == 0 else (self.total - self.remaining) / self.total

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def bar_text(self) -> str:
        # Rounded down (as `bar` is): 99.6% is not "100% done" while a send is still out.
        return "" if self.bar is None else f"{int(round(self.bar * 100, 2))}% done"

    @property
    def eta_text(self) -> str:
        return NO_FIGURE if self.eta_seconds is None else f"about {roughly(self.eta_seconds)}"

    @property
    def rate_text(self) -> str:
        return f"{self.rate_per_second:g}/s"

    @property
    def pace_text(self) -> str:
        return f"{self.done_per_second:g} done/s"

    def offering(self, actions: Iterable[str]) -> Progress:
        return replace(self, actions=tuple(actions))

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "done_fraction": round(self.done_fraction, 4),
            "live": self.live,
            "bar_text": self.bar_text,
            "eta_text": self.eta_text,
            "rate_text": self.rate_text,
            "pace_text": self.pace_text,
        }


def stall_after(campaign: Campaign) -> timedelta:
    """How long a running campaign with sends due may go without moving: beat's
    recovery interval, or a few send intervals of a slow rate."""
    seconds = float(settings.CAMPAIGNS_RECOVER_INTERVAL)
    rate = campaign.rate
    if rate is not None:
        seconds = max(seconds, STALL_SENDS * rate.get_expiry() / (rate.amount * PACE_SHARE))
    return timedelta(seconds=seconds)


def progress(campaign: Campaign, *, now: datetime | None = None) -> Progress:
    now = now or timezone.now()
    started, restarted = _latest_starts(campaign)
    since = max(now - ETA_WINDOW, started or campaign.started_at or now - ETA_WINDOW)
    # A row a worker dealt with was handed out or claimed; one skipped when the campaign
    # started was neither, and is not a recipient done at the campaign's pace.
    handled = Q(dispatched_at__isnull=False) | Q(claimed_at__isnull=False)
    done_since = Q(sent_at__gte=since) | Q(sent_at__isnull=True, updated_at__gte=since)
    rows = (
        campaign.recipients.values("status")
        .annotate(
            n=Count("pk"),
            moved_at=Max(Coalesce("sent_at", "updated_at")),
            done=Count("pk", filter=handled & done_since),
            sent_now=Count("pk", filter=Q(sent_at__gte=now - RATE_WINDOW)),
            waiting=Count("pk", filter=Q(next_attempt_at__gt=now)),
            lapsed=Count("pk", filter=Q(claimed_until__lt=now)),
        )
        .order_by()
    )
    counts = dict.fromkeys(S.values, 0)
    done = sent_now = due = 0
    moments = [at for at in (campaign.started_at, restarted) if at is not None]
    for row in rows:
        status = row["status"]
        counts[status] = row["n"]
        sent_now += row["sent_now"]
        if row["moved_at"] is not None:
            moments.append(row["moved_at"])
        if status in ACTIVE:  # less the queued backing off and the claims being settled
            due += row["n"] - row["waiting" if status == S.QUEUED else "lapsed"]
        else:
            done += row["done"]
    remaining = counts[S.QUEUED] + counts[S.SENDING]
    running = campaign.status == Campaign.Status.RUNNING
    silent = now - max(moments) if moments else timedelta(0)
    stalled = running and due > 0 and silent > stall_after(campaign)
    pace = done / max(now - since, RATE_WINDOW).total_seconds()
    eta = round(remaining / pace) if running and not stalled and remaining and pace else None
    total = sum(counts.values())
    would_email = _would_email(campaign)
    return Progress(
        status=campaign.status,
        state=_state(campaign, silent if stalled else None, would_email),
        total=total,
        sent=sum(counts[status] for status in SENT_OR_LATER),
        failed=counts[S.FAILED],
        skipped=counts[S.SKIPPED],
        unknown=counts[S.UNKNOWN],
        remaining=remaining,
        by_status=counts,
        rate_per_second=round(sent_now / RATE_WINDOW.total_seconds(), 2),
        done_per_second=round(pace, 2),
        configured_rate=campaign.rate_limit or "unlimited",
        eta_seconds=eta,
        stalled=stalled,
        no_progress_seconds=int(silent.total_seconds()) if stalled else None,
        bar=_bar(campaign.status, total - counts[S.SKIPPED], remaining),
        would_email=would_email,
    )


def _would_email(campaign: Campaign) -> int | None:
    if campaign.status != Campaign.Status.DRAFT:
        return None
    found = audience.count(
        approved_only=campaign.approved_only, include_notified=campaign.include_notified
    )
    return found.eligible


def _state(campaign: Campaign, stalled_for: timedelta | None, would_email: int | None) -> str:
    if stalled_for is not None:
        return f"Stalled — no progress for {roughly(stalled_for.total_seconds())}"
    if would_email is not None:
        return f"Draft — not started; {counted(would_email, 'artist')} would be emailed"
    return status_words(campaign.status)


def _bar(status: str, emails: int, remaining: int) -> float | None:
    if status in (Campaign.Status.DRAFT, Campaign.Status.CANCELLED):
        return None
    if status == Campaign.Status.DONE:
        return 1.0
    # Four places, rounded down: the last send out is never shown as all done.
    return 0.0 if emails == 0 else (emails - remaining) * 10_000 // emails / 10_000


def _latest_starts(campaign: Campaign) -> tuple[datetime | None, datetime | None]:
    """When the campaign last started or resumed, and last got work to move again."""
    latest = campaign.actions.aggregate(
        started=Max("at", filter=Q(action__in=STARTS)),
        restarted=Max("at", filter=Q(action__in=RESTARTS)),
    )
    return latest["started"], latest["restarted"]
