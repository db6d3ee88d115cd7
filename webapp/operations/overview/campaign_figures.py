"""Campaigns as the overview shows them: how fast the current ones send against their
limit, and what became of each campaign's emails: how many of the artists it reached
connected SumUp within 1, 7 and 30 days of their email, and how many unsubscribed or
bounced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Count, F, Q

from accounts.models import ConnectionStatus
from campaigns.models import Campaign, Recipient
from campaigns.progress import SENT_OR_LATER, progress

CONVERSION_WINDOWS = (1, 7, 30)  # days after an artist's email
CONVERSION_CAMPAIGNS = 12  # the most recent campaigns shown; older ones are in the admin
CURRENT = (Campaign.Status.RUNNING, Campaign.Status.PAUSED)


@dataclass(frozen=True)
class SendRate:
    campaign: Campaign
    state: str  # as its progress page says it, e.g. "Running", "Stalled — ..."
    per_second: float  # sends over the last few seconds
    limit_per_second: float | None  # None: no limit
    limit_text: str  # as configured, e.g. "10/s", "600/min", "unlimited"


@dataclass(frozen=True)
class Conversion:
    campaign: Campaign
    emailed: int  # recipients whose email the provider took (sent or later)
    connected_within: dict[int, int]  # days -> artists connected within them of their email
    unsubscribed: int
    bounced: int


def send_rates() -> list[SendRate]:
    """Each running or paused campaign's rate of sending against its limit."""
    rates = []
    for campaign in Campaign.objects.filter(status__in=CURRENT).order_by("created_at"):
        now = progress(campaign)
        rate = campaign.rate
        rates.append(
            SendRate(
                campaign=campaign,
                state=now.state,
                per_second=now.rate_per_second,
                limit_per_second=rate.amount / rate.get_expiry() if rate is not None else None,
                limit_text=campaign.rate_limit or "unlimited",
            )
        )
    return rates


def conversions(limit: int = CONVERSION_CAMPAIGNS) -> list[Conversion]:
    """The most recent campaigns that have begun, newest first; one grouped query over
    their recipients, joined to the artists they went to."""
    campaigns = list(Campaign.objects.exclude(status=Campaign.Status.DRAFT)[:limit])
    connected = Q(
        artist__sumup_connection_status=ConnectionStatus.CONNECTED,
        artist__sumup_connected_at__gte=F("sent_at"),
    )
    windows = {
        f"within_{days}": Count(
            "pk",
            filter=connected
            & Q(artist__sumup_connected_at__lte=F("sent_at") + timedelta(days=days)),
        )
        for days in CONVERSION_WINDOWS
    }
    rows = {
        row["campaign_id"]: row
        for row in Recipient.objects.filter(campaign__in=campaigns, status__in=SENT_OR_LATER)
        .values("campaign_id")
        .annotate(
            emailed=Count("pk"),
            unsubscribed=Count("pk", filter=Q(status=Recipient.Status.UNSUBSCRIBED)),
            bounced=Count("pk", filter=Q(status=Recipient.Status.BOUNCED)),
            **windows,
        )
        .order_by()
    }
    return [_conversion(campaign, rows.get(campaign.pk, {})) for campaign in campaigns]


def _conversion(campaign: Campaign, row: Mapping[str, Any]) -> Conversion:
    return Conversion(
        campaign=campaign,
        emailed=row.get("emailed", 0),
        connected_within={days: row.get(f"within_{days}", 0) for days in CONVERSION_WINDOWS},
        unsubscribed=row.get("unsubscribed", 0),
        bounced=row.get("bounced", 0),
    )
