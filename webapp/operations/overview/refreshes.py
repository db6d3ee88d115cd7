"""The token refresh sweep as staff watch it: outcomes per hour over the last day, and
its live state as one payload, which the page shows when it opens and then polls
(`views.refresh_json`), so both always say the same.

Outcomes come from the hourly counts each queued refresh adds in Redis
(accounts.sumup.refresh_outcomes); due and queued artists from their rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import ArtistProfile
from accounts.sumup import headroom, refresh, refresh_alerts, refresh_outcomes
from accounts.sumup.refresh import Outcome
from events.durations import roughly

CHART_HOURS = 24
# What the hourly chart shows: the outcomes that say whether connections are kept alive.
CHARTED = (Outcome.REFRESHED, Outcome.EXPIRED, Outcome.ERROR, Outcome.OVER_BUDGET)
# What the live state counts over the last hour.
LAST_HOUR = (Outcome.REFRESHED, Outcome.EXPIRED, Outcome.ERROR)
LABELS = {
    Outcome.REFRESHED: "Refreshed",
    Outcome.EXPIRED: "Expired",
    Outcome.ERROR: "Error",
    Outcome.OVER_BUDGET: "Over budget",
}


def hourly(now: datetime | None = None) -> list[refresh_outcomes.Hour]:
    """The outcomes of each of the last `CHART_HOURS` hours, oldest first."""
    return refresh_outcomes.by_hour(CHART_HOURS, now)


def status(now: datetime | None = None) -> dict[str, Any]:
    """The sweep's live state: when it last ran and is next expected (an interval after
    the last), the artists due now and those queued, the last hour's outcomes and the
    budget's headroom for the next hour (accounts.sumup.headroom). Each
    figure is also in `text`, worded as the page shows it."""
    now = now or timezone.now()
    last = refresh_outcomes.last_taken()
    interval = timedelta(seconds=settings.SUMUP_REFRESH_SWEEP_INTERVAL)
    following = last + interval if last is not None else None
    outcomes = refresh_outcomes.last_hour(now)
    payload: dict[str, Any] = {
        "as_of": now.isoformat(),
        "last_sweep_at": last.isoformat() if last else None,
        "next_sweep_at": following.isoformat() if following else None,
        "next_sweep_overdue": following is not None and following < now,
        "due_now": refresh.due_profiles(now).count(),
        "queued": ArtistProfile.objects.filter(sumup_refresh_enqueued_at__isnull=False).count(),
        "last_hour": {outcome.value: outcomes.get(outcome.value, 0) for outcome in LAST_HOUR},
        "halted": refresh_alerts.is_halted(),
        "budget": headroom.current().as_dict(),
    }
    payload["text"] = _worded(payload, now, last, following)
    return payload


def _worded(
    payload: dict[str, Any], now: datetime, last: datetime | None, following: datetime | None
) -> dict[str, str]:
    return {
        "as_of": _clock(now),
        "last_sweep": (
            f"{_clock(last)}, {roughly((now - last).total_seconds())} ago"
            if last
            else "none recorded"
        ),
        "next_sweep": _next(now, following),
        "due_now": f"{payload['due_now']:,}",
        "queued": f"{payload['queued']:,}",
        **{name: f"{count:,}" for name, count in payload["last_hour"].items()},
        "halted": (
            "Halted: SumUp refuses the platform's credentials; one artist is probed each sweep"
            if payload["halted"]
            else "Running"
        ),
        **_budget_words(payload["budget"]),
    }


def _budget_words(budget: dict[str, Any]) -> dict[str, str]:
    needed, available = budget["needed_per_hour"], budget["available_per_hour"]
    return {
        "budget": f"{needed:,} needed of {available:,} calls ({budget['used']:.0%})",
        "budget_warning": (
            f"The SumUp budget is short: {needed:,} refreshes fall due within the hour and "
            f"the sweep may make {available:,} calls in that time, so some access tokens "
            "will expire before they are refreshed. Raise SUMUP_API_RATE_LIMIT (if SumUp "
            "allows it) or expect on-demand refreshes."
            if budget["short"]
            else ""
        ),
    }


def _next(now: datetime, following: datetime | None) -> str:
    if following is None:
        return "unknown until a sweep has run"
    if following < now:
        return f"{_clock(following)}, overdue by {roughly((now - following).total_seconds())}"
    return f"{_clock(following)}, in {roughly((following - now).total_seconds())}"


def _clock(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S")
