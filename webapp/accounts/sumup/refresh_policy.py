"""When each SumUp connection is next refreshed: the rule the sweep follows.

Every working connection carries its next refresh as a time, `sumup_refresh_due_at`,
written with every write of its grant; the sweep reads only rows whose time has come
(a partial index: its condition is the index's, never a filter over every connection).
Disconnected and lapsed connections have none.

The rule, for a grant written at `now`:

- **Every grant is kept alive.** Its refresh token is used again once it is
  `SUMUP_REFRESH_TOKEN_RENEW_AFTER` old (150 days): SumUp issues a new one, valid six
  months, only to a refresh token used within its last 30 days, and a grant whose refresh
  token lapses is dead until the artist reconnects. A refresh token of unknown age (a grant
  stored before its issue time was kept) is used again within `UNKNOWN_AGE_RENEW`.
- **Access tokens are refreshed ahead only for active artists**: those whose token the
  platform used within `SUMUP_TOKEN_ACTIVE_FOR` (3 days). Theirs is refreshed
  `SUMUP_REFRESH_WINDOW` before it expires, so a payment never waits on SumUp. Every other
  artist's access token is left to expire; the token getter (accounts.sumup.tokens)
  refreshes it on demand when it is next used, and that use makes the artist active again.
  Connecting counts as a use: an artist who has just connected is about to sell.

An hour-long access token kept fresh is refreshed every 50 minutes (an hour less the
window): 1.2 calls an hour, 29 a day; a grant kept alive costs one call in 150 days.
Under the default budget (20/s, the sweep's paced share 18/s: 64,800 calls an hour) the
sweep keeps about 54,000 active artists fresh beside a million grants alive (a million
renewals spread over 150 days are 0.08 calls a second); the staff overview and /metrics
show the hour ahead against that (accounts.sumup.headroom).

A row whose grant was written by code that does not keep the time (the release before,
during a rolling deploy; a row loaded by hand) has none while it is refreshable:
`unscheduled_rows` finds them through a second, normally empty, partial index, and the
sweep schedules them as the release before would have refreshed them (`legacy_due_at`),
after which the rule above applies.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Least

UNKNOWN_AGE_RENEW = timedelta(days=7)
# SumUp's access tokens last an hour (`expires_in` 3599 or 3600): what an active artist
# costs the budget follows from it (`active_cycle`).
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
# A use is recorded at most this often per artist: one write an hour, not one per call.
USE_RECORDED_EVERY = timedelta(hours=1)
# The statuses whose grants are refreshed (a connection in error is tried again).
REFRESHABLE_STATUSES = ("connected", "error")


def active_cycle() -> timedelta:
    """How often an active artist's access token is refreshed: SumUp's access tokens last
    `ACCESS_TOKEN_LIFETIME`, each refreshed `SUMUP_REFRESH_WINDOW` before it ends."""
    return ACCESS_TOKEN_LIFETIME - refresh_window()


def active_for() -> timedelta:
    return timedelta(seconds=settings.SUMUP_TOKEN_ACTIVE_FOR)


def refresh_window() -> timedelta:
    return timedelta(seconds=settings.SUMUP_REFRESH_WINDOW)


def renew_after() -> timedelta:
    return timedelta(seconds=settings.SUMUP_REFRESH_TOKEN_RENEW_AFTER)


def is_active(used_at: datetime | None, now: datetime) -> bool:
    """Whether the platform used this artist's token recently enough to keep it fresh."""
    return used_at is not None and used_at >= now - active_for()


def next_due(
    *,
    expires_at: datetime | None,
    refresh_token_issued_at: datetime | None,
    used_at: datetime | None,
    now: datetime,
) -> datetime:
    """When a grant with these times, written at `now`, is next refreshed."""
    if refresh_token_issued_at is None:
        renew = now + UNKNOWN_AGE_RENEW
    else:
        renew = refresh_token_issued_at + renew_after()
    if expires_at is None:  # no expiry known: find out now
        return now
    if is_active(used_at, now):
        return min(renew, expires_at - refresh_window())
    return renew


def due_changes(current: Any, changes: dict[str, Any], now: datetime) -> dict[str, Any]:
    """`sumup_refresh_due_at` for a grant about to be written: `changes` over `current`."""

    def value(field: str) -> Any:
        return changes[field] if field in changes else getattr(current, field)

    return {
        "sumup_refresh_due_at": next_due(
            expires_at=value("sumup_expires_at"),
            refresh_token_issued_at=value("sumup_refresh_token_issued_at"),
            used_at=value("sumup_token_used_at"),
            now=now,
        )
    }


def unscheduled_rows(rows: QuerySet[Any]) -> QuerySet[Any]:
    """Refreshable rows with no next refresh (see the module's last paragraph). The
    condition is the partial index `artistprofile_unscheduled_idx`'s."""
    return rows.filter(
        sumup_refresh_due_at__isnull=True,
        sumup_connection_status__in=REFRESHABLE_STATUSES,
        sumup_refresh_token__isnull=False,
    )


def legacy_due_at(now: datetime) -> Coalesce:
    """The next refresh of an unscheduled row, in SQL: as the release before refreshed
    every working connection, `SUMUP_REFRESH_WINDOW` before its access token expires, or
    when its refresh token is due for renewal, whichever comes first (`now` when neither
    is known)."""
    access = ExpressionWrapper(
        F("sumup_expires_at") - Value(refresh_window()), output_field=DateTimeField()
    )
    renew = ExpressionWrapper(
        F("sumup_refresh_token_issued_at") + Value(renew_after()), output_field=DateTimeField()
    )
    # LEAST is NULL on SQLite when either is: hence the fallbacks, in order.
    return Coalesce(Least(access, renew), access, renew, Value(now), output_field=DateTimeField())


def unused_since(now: datetime) -> Q:
    """Rows whose last recorded use is older than `USE_RECORDED_EVERY` (or none)."""
    return Q(sumup_token_used_at__isnull=True) | Q(sumup_token_used_at__lt=now - USE_RECORDED_EVERY)


def inactive_at(now: datetime) -> Q:
    """Rows the rule counts as inactive at `now`."""
    return Q(sumup_token_used_at__isnull=True) | Q(sumup_token_used_at__lt=now - active_for())
