"""SumUp connections by status: as they stand now, and one count per day.

Artists' rows hold only the present, so the past is kept here: beat counts the
connections every hour (jobs.overview) and the overview counts them when it finds today
missing; each count replaces the day's earlier one, so a day's row is its last count. A
day with no row was never counted: it reads as "no data", never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from accounts.models import ArtistProfile, ConnectionStatus
from operations.models import ConnectionDay

HISTORY_DAYS = 30
# In the order staff read them: working, lapsed (the artist must reconnect), failing, never.
STATUSES = (
    ConnectionStatus.CONNECTED,
    ConnectionStatus.EXPIRED,
    ConnectionStatus.ERROR,
    ConnectionStatus.NOT_CONNECTED,
)


@dataclass(frozen=True)
class Day:
    day: date
    counts: dict[str, int] | None  # by status; None: no count was kept that day


def counts_now() -> dict[str, int]:
    """Artists by connection status (every status present, zero when none)."""
    rows = (
        ArtistProfile.objects.values("sumup_connection_status").annotate(n=Count("pk")).order_by()
    )
    found = {row["sumup_connection_status"]: row["n"] for row in rows}
    return {status.value: found.get(status, 0) for status in STATUSES}


def record_day(now: datetime | None = None) -> dict[str, int]:
    """Keep today's count per status as it stands, replacing today's earlier one; safe to
    run twice, or from two processes at once (an upsert on day and status)."""
    now = now or timezone.now()
    counts = counts_now()
    day = timezone.localdate(now)
    ConnectionDay.objects.bulk_create(
        [
            ConnectionDay(day=day, status=status, count=count, recorded_at=now)
            for status, count in counts.items()
        ],
        update_conflicts=True,
        unique_fields=["day", "status"],
        update_fields=["count", "recorded_at"],
    )
    return counts


def record_day_if_missing(now: datetime | None = None) -> bool:
    """Count today unless it was counted already; whether it counted."""
    now = now or timezone.now()
    if ConnectionDay.objects.filter(day=timezone.localdate(now)).exists():
        return False
    record_day(now)
    return True


def history(days: int = HISTORY_DAYS, today: date | None = None) -> list[Day]:
    """The last `days` days, oldest first, today last."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    kept: dict[date, dict[str, int]] = {}
    rows = ConnectionDay.objects.filter(day__range=(first, today)).values_list(
        "day", "status", "count"
    )
    for day, status, count in rows:
        kept.setdefault(day, {status.value: 0 for status in STATUSES})[status] = count
    return [Day(day, kept.get(day)) for day in (first + timedelta(n) for n in range(days))]
