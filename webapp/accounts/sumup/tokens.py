"""How the rest of the platform gets a working SumUp access token for an artist.

    token = valid_access_token(profile_id)
    result = call_with_token(profile_id, lambda token: client.merchant_business_name(token, code))

A token expiring within ON_DEMAND_LEEWAY is refreshed first, under the same per-artist
claim the sweep uses; an API call answered 401 gets one refresh and one retry, no more.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup import refresh
from accounts.sumup.client import SumUpError
from accounts.sumup.refresh import Outcome

ON_DEMAND_LEEWAY = 60  # seconds


class TokenUnavailable(Exception):
    """No usable token. `permanent`: the artist must reconnect; otherwise retry soon."""

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None):
        self.permanent = permanent
        self.retry_after = retry_after
        super().__init__(reason)


def _current_token(profile_id: int, leeway: float) -> str | None:
    profile = ArtistProfile.objects.get(pk=profile_id)
    if profile.sumup_connection_status != ConnectionStatus.CONNECTED:
        raise TokenUnavailable(
            f"SumUp is {profile.get_sumup_connection_status_display().lower()} for this artist",
            permanent=profile.sumup_connection_status != ConnectionStatus.ERROR,
        )
    expires_at = profile.sumup_expires_at
    fresh = expires_at is not None and (expires_at - timezone.now()).total_seconds() > leeway
    return profile.sumup_access_token if fresh and profile.sumup_access_token else None


def valid_access_token(profile_id: int, *, force_refresh: bool = False) -> str:
    if not force_refresh and (token := _current_token(profile_id, ON_DEMAND_LEEWAY)):
        return token
    result = refresh.refresh_profile(
        profile_id,
        only_if_due=not force_refresh,
        expiring_within=None if force_refresh else ON_DEMAND_LEEWAY,
    )
    if result.outcome in (Outcome.OVER_BUDGET, Outcome.RETRY, Outcome.HALTED):
        raise TokenUnavailable(
            f"SumUp refresh did not complete ({result.outcome})",
            permanent=False,
            retry_after=result.retry_after,
        )
    token = _current_token(profile_id, 0 if force_refresh else ON_DEMAND_LEEWAY)
    if token is None:
        # Another process holds the claim and has not stored its result yet.
        raise TokenUnavailable("a refresh is in progress", permanent=False, retry_after=1.0)
    return token


def call_with_token[T](profile_id: int, call: Callable[[str], T]) -> T:
    """Run a SumUp API call with a valid token; on 401, refresh once and retry once."""
    try:
        return call(valid_access_token(profile_id))
    except SumUpError as exc:
        if exc.status != 401:
            raise
    return call(valid_access_token(profile_id, force_refresh=True))
