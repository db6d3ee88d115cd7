"""Whether the SumUp budget can keep every connection alive: the refreshes the next hour
needs against the calls an hour of the sweep's paced share allows.

Needed: every working connection whose next refresh falls within the next hour (an
active artist's access token about to expire, a grant due for renewal, a connection in
error tried again: accounts.sumup.refresh_policy), each one call, and an active artist
due early in the hour a second call when it falls due again before the hour ends.
Available: an hour of the paced slots the sweep's refreshes take
(`refresh.paced_interval`; the rest of the budget is left to on-demand refreshes).
Needed above available means artists will wait past their deadline and access tokens
expire before they are refreshed: staff are warned on the overview and a scraper sees
both figures in /metrics.

Counting reads the due rows of the hour ahead from the sweep's index (tens of thousands
at a million artists), so the figure is kept in the cache for `CACHE_SECONDS`: a scrape
or a page view does not repeat the count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from accounts.sumup import refresh, refresh_policy

HORIZON = timedelta(hours=1)
CACHE_KEY = "sumup:refresh:headroom"
CACHE_SECONDS = 60


@dataclass(frozen=True)
class Headroom:
    needed_per_hour: int  # refreshes due within the next hour
    available_per_hour: int  # calls an hour of the sweep's paced share allows

    @property
    def short(self) -> bool:
        """More falls due than the budget can renew in time."""
        return self.needed_per_hour > self.available_per_hour

    @property
    def used(self) -> float:
        """Needed over available: above 1.0 the budget is short."""
        return self.needed_per_hour / self.available_per_hour if self.available_per_hour else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "short": self.short, "used": round(self.used, 4)}


def measure(now: datetime | None = None) -> Headroom:
    """The headroom now, counted afresh."""
    now = now or timezone.now()
    needed = refresh.due_profiles(now + HORIZON).count()
    # An active artist refreshed early in the hour falls due again before it ends: a
    # token of an hour is refreshed every hour less the window (50 minutes by default).
    again_by = now + HORIZON - refresh_policy.active_cycle()
    if again_by > now:
        needed += refresh.due_profiles(again_by).exclude(refresh_policy.inactive_at(now)).count()
    available = int(HORIZON.total_seconds() / refresh.paced_interval())
    return Headroom(needed_per_hour=needed, available_per_hour=available)


def current() -> Headroom:
    """The headroom as last counted, within `CACHE_SECONDS`."""
    kept = cache.get(CACHE_KEY)
    if isinstance(kept, dict):
        return Headroom(kept["needed_per_hour"], kept["available_per_hour"])
    measured = measure()
    cache.set(CACHE_KEY, asdict(measured), CACHE_SECONDS)
    return measured
