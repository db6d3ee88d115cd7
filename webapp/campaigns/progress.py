"""A campaign's progress as staff watch it: counts from the recipient table, the rate
of the last few seconds, and when it should be done at that rate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from campaigns.models import Campaign, Recipient

RATE_WINDOW = timedelta(seconds=10)  # the current rate is measured over this
S = Recipient.Status
# Every status a row reaches only after the provider accepted its message.
SENT_OR_LATER = (S.SENT, S.DELIVERED, S.BOUNCED, S.COMPLAINED, S.UNSUBSCRIBED)


@dataclass(frozen=True)
class Progress:
    status: str
    total: int
    sent: int
    failed: int
    skipped: int
    unknown: int
    remaining: int
    by_status: dict[str, int]
    rate_per_second: float
    configured_rate: str
    eta_seconds: int | None

    @property
    def done_fraction(self) -> float:
        return 1.0 if self.total == 0 else (self.total - self.remaining) / self.total

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "done_fraction": round(self.done_fraction, 4)}


def progress(campaign: Campaign) -> Progress:
    counts = campaign.counts()
    now = timezone.now()
    recent = campaign.recipients.filter(sent_at__gte=now - RATE_WINDOW).count()
    rate_now = recent / RATE_WINDOW.total_seconds()
    remaining = counts[S.QUEUED] + counts[S.SENDING]
    pace = rate_now
    if not pace and campaign.status == Campaign.Status.RUNNING and campaign.rate is not None:
        pace = campaign.rate.amount / campaign.rate.get_expiry()
    eta = round(remaining / pace) if remaining and pace else (0 if not remaining else None)
    return Progress(
        status=campaign.status,
        total=sum(counts.values()),
        sent=sum(counts[status] for status in SENT_OR_LATER),
        failed=counts[S.FAILED],
        skipped=counts[S.SKIPPED],
        unknown=counts[S.UNKNOWN],
        remaining=remaining,
        by_status=counts,
        rate_per_second=round(rate_now, 2),
        configured_rate=campaign.rate_limit or "unlimited",
        eta_seconds=eta,
    )
