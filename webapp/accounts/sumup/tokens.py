"""The one way the platform reads an artist's SumUp access token to call SumUp with.

`access_token` records the use (at most one write an hour per artist: the refresh
policy's notion of an active artist, accounts.sumup.refresh_policy) and hands back a
token good for at least `USE_MARGIN`, refreshing it on demand first when it is not:
an artist the sweep no longer keeps fresh waits for one token call at their next use.
The on-demand refresh takes the budget's interactive room (not the sweep's bulk share)
and the same per-artist claim as every other refresh, so it never races the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Value, When
from django.db.models.functions import Least
from django.utils import timezone

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup import refresh, refresh_policy

# A token expiring sooner than this is refreshed before it is handed out: long enough
# for the call the caller is about to make.
USE_MARGIN = timedelta(seconds=60)


class TokenUnavailable(Exception):
    """No working access token: the artist must (re)connect, or SumUp cannot be reached
    now (`retry_after` seconds, when known)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: datetime | None
    merchant_code: str


def access_token(profile_id: int) -> AccessToken:
    """A working access token for this artist, good for at least `USE_MARGIN`.

    Raises `TokenUnavailable` when the artist has no working connection, or the token
    has run out and could not be refreshed now."""
    now = timezone.now()
    profile = _load(profile_id)
    if profile.sumup_connection_status not in refresh.REFRESHABLE:
        raise TokenUnavailable("not connected")
    record_use(profile, now)
    if _good_for_use(profile, now):
        return _token_of(profile)
    result = refresh.refresh_profile(profile_id, only_if_due=False)
    profile = _load(profile_id)
    if _good_for_use(profile, timezone.now()):
        return _token_of(profile)
    if result.outcome is refresh.Outcome.NOT_DUE and _still_valid(profile, timezone.now()):
        # Another process holds the refresh under way; this token still works meanwhile.
        return _token_of(profile)
    raise TokenUnavailable(
        f"no working access token ({result.outcome})", retry_after=result.retry_after
    )


def record_use(profile: ArtistProfile, now: datetime) -> bool:
    """Note that the platform is using this artist's token, unless noted within the hour.
    An artist who was not active has their access token refreshed ahead from now on: the
    next refresh moves up to `SUMUP_REFRESH_WINDOW` before the token expires."""
    used_at = profile.sumup_token_used_at
    if used_at is not None and used_at >= now - refresh_policy.USE_RECORDED_EVERY:
        return False  # recorded within the hour: no write
    recorded = record_uses([profile.pk], now)
    profile.sumup_token_used_at = now
    return bool(recorded)


def record_uses(profile_ids: list[int], now: datetime) -> int:
    """`record_use` for these artists in one statement, each row written only if its use
    was not noted within the hour; how many were written."""
    ahead = ExpressionWrapper(
        F("sumup_expires_at") - Value(refresh_policy.refresh_window()),
        output_field=DateTimeField(),
    )
    moved_up = Case(
        When(
            refresh_policy.inactive_at(now),
            sumup_refresh_due_at__isnull=False,
            sumup_expires_at__isnull=False,
            then=Least(F("sumup_refresh_due_at"), ahead),
        ),
        default=F("sumup_refresh_due_at"),
        output_field=DateTimeField(),
    )
    return (
        ArtistProfile.objects.filter(pk__in=profile_ids)
        .filter(refresh_policy.unused_since(now))
        .update(sumup_token_used_at=now, sumup_refresh_due_at=moved_up)
    )


_READ_FIELDS = (
    "sumup_access_token",
    "sumup_expires_at",
    "sumup_merchant_code",
    "sumup_connection_status",
    "sumup_token_used_at",
)


def _load(profile_id: int) -> ArtistProfile:
    profile = ArtistProfile.objects.only(*_READ_FIELDS).filter(pk=profile_id).first()
    if profile is None:
        raise TokenUnavailable("no such artist")
    return profile


def _good_for_use(profile: ArtistProfile, now: datetime) -> bool:
    return _valid_at(profile, now + USE_MARGIN)


def _still_valid(profile: ArtistProfile, now: datetime) -> bool:
    return _valid_at(profile, now)


def _valid_at(profile: ArtistProfile, instant: datetime) -> bool:
    """A working connection whose access token is still good at `instant`."""
    return (
        profile.sumup_connection_status == ConnectionStatus.CONNECTED
        and bool(profile.sumup_access_token)
        and profile.sumup_expires_at is not None
        and profile.sumup_expires_at > instant
    )


def _token_of(profile: ArtistProfile) -> AccessToken:
    return AccessToken(
        token=profile.sumup_access_token or "",
        expires_at=profile.sumup_expires_at,
        merchant_code=profile.sumup_merchant_code or "",
    )
