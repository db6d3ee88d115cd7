"""The refresh policy: each grant's next refresh kept in its row, access tokens refreshed
ahead only for artists whose token the platform uses, and the token getter that records
each use and refreshes on demand. Against the fake SumUp and the real PostgreSQL."""

from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup import headroom, refresh, refresh_policy, sweep, tokens
from accounts.sumup.refresh import Outcome
from events import shared_redis
from fakes.sumup import FakeSumUp

WINDOW = timedelta(seconds=600)
RENEW_AFTER = timedelta(days=150)


@pytest.fixture(autouse=True)
def clean_redis() -> None:
    """Budget windows and sweep locks live in the test Redis database."""
    shared_redis.client().flushdb()


def when(value: datetime | None) -> datetime:
    """A time the test expects to be set."""
    assert value is not None
    return value


def reload(profile: ArtistProfile) -> ArtistProfile:
    return ArtistProfile.objects.get(pk=profile.pk)


def refresh_calls(sumup: FakeSumUp, profile: ArtistProfile) -> int:
    email = f"merchant{int(str(profile.sumup_merchant_code)[2:])}@example.com"
    return sumup.state.token_calls(email, "refresh_token")


def due_ids(at=None) -> set[int]:
    return set(refresh.due_profiles(at).values_list("pk", flat=True))


def go_quiet(profile: ArtistProfile, days: float) -> None:
    """As if the platform last used the artist's token `days` ago."""
    ArtistProfile.objects.filter(pk=profile.pk).update(
        sumup_token_used_at=timezone.now() - timedelta(days=days)
    )


# --- the rule ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_connection_is_active_and_refreshed_ahead_of_expiry(connected_artist):
    profile = reload(connected_artist(expires_in=3599))

    assert profile.sumup_token_used_at is not None
    assert when(profile.sumup_refresh_due_at) == when(profile.sumup_expires_at) - WINDOW


@pytest.mark.django_db
def test_an_artist_who_stopped_using_their_token_only_has_the_grant_renewed(
    connected_artist, sumup
):
    profile = connected_artist(expires_in=120)  # due now: refreshed ahead while active
    go_quiet(profile, days=4)

    assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED
    stored = reload(profile)
    # The new access token is left to expire; the grant is next used at its renewal.
    assert when(stored.sumup_expires_at) > timezone.now() + timedelta(minutes=55)
    assert (
        when(stored.sumup_refresh_due_at)
        == when(stored.sumup_refresh_token_issued_at) + RENEW_AFTER
    )
    assert profile.pk not in due_ids(timezone.now() + timedelta(days=149))
    assert profile.pk in due_ids(timezone.now() + timedelta(days=150, minutes=1))


@pytest.mark.django_db
def test_an_artist_who_used_their_token_within_the_active_period_stays_fresh(
    connected_artist, sumup
):
    profile = connected_artist(expires_in=120)
    go_quiet(profile, days=2.9)

    assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED
    stored = reload(profile)
    assert when(stored.sumup_refresh_due_at) == when(stored.sumup_expires_at) - WINDOW


@pytest.mark.django_db
def test_every_grant_is_renewed_inside_sumups_reissue_window(connected_artist, sumup):
    """An inactive artist's refresh token is used again after 150 days, when SumUp (which
    reissues only in a refresh token's last 30 days) hands out a new one."""
    profile = connected_artist(expires_in=120)
    go_quiet(profile, days=30)
    assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED
    first = reload(profile)

    with time_machine.travel(when(first.sumup_refresh_due_at) + timedelta(seconds=1), tick=False):
        assert profile.pk in due_ids()
        assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED
        renewed = reload(profile)
        assert renewed.sumup_refresh_token != first.sumup_refresh_token
        assert renewed.sumup_refresh_token_issued_at == timezone.now()
        assert renewed.sumup_refresh_due_at == timezone.now() + RENEW_AFTER


@pytest.mark.django_db
def test_a_refresh_token_of_unknown_age_is_renewed_within_a_week(connected_artist, sumup):
    profile = connected_artist(expires_in=120)
    go_quiet(profile, days=30)
    ArtistProfile.objects.filter(pk=profile.pk).update(sumup_refresh_token_issued_at=None)

    assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED
    stored = reload(profile)
    assert stored.sumup_refresh_token_issued_at is None  # SumUp kept the refresh token
    assert when(stored.sumup_refresh_due_at) <= timezone.now() + refresh_policy.UNKNOWN_AGE_RENEW


@pytest.mark.django_db
def test_a_disconnected_or_lapsed_artist_has_no_next_refresh(connected_artist):
    profile = connected_artist()
    profile.disconnect_sumup()

    assert reload(profile).sumup_refresh_due_at is None
    assert profile.pk not in due_ids(timezone.now() + timedelta(days=365))


# --- the token getter --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_getter_hands_out_a_fresh_token_without_calling_sumup(connected_artist, sumup):
    profile = connected_artist(expires_in=3599)

    token = tokens.access_token(profile.pk)

    assert token.token == reload(profile).sumup_access_token
    assert token.merchant_code == profile.sumup_merchant_code
    assert refresh_calls(sumup, profile) == 0


@pytest.mark.django_db
def test_the_getter_refreshes_a_token_about_to_expire_then_hands_out_the_new_one(
    connected_artist, sumup
):
    profile = connected_artist(expires_in=30)  # under the getter's 60 s margin
    old = reload(profile).sumup_access_token

    token = tokens.access_token(profile.pk)

    assert refresh_calls(sumup, profile) == 1
    assert token.token != old
    assert token.token == reload(profile).sumup_access_token
    assert when(token.expires_at) > timezone.now() + timedelta(minutes=55)


@pytest.mark.django_db
def test_the_getter_refreshes_an_inactive_artists_expired_token_and_makes_them_active(
    connected_artist, sumup
):
    profile = connected_artist(expires_in=3599)
    go_quiet(profile, days=10)
    ArtistProfile.objects.filter(pk=profile.pk).update(
        sumup_expires_at=timezone.now() - timedelta(hours=5),
        sumup_refresh_due_at=timezone.now() + timedelta(days=100),
    )

    token = tokens.access_token(profile.pk)

    stored = reload(profile)
    assert refresh_calls(sumup, profile) == 1
    assert token.token == stored.sumup_access_token
    assert when(stored.sumup_token_used_at) > timezone.now() - timedelta(minutes=1)
    # Active again: kept fresh ahead of expiry from now on.
    assert when(stored.sumup_refresh_due_at) == when(stored.sumup_expires_at) - WINDOW


@pytest.mark.django_db
def test_a_use_moves_an_inactive_artists_next_refresh_up_to_before_expiry(connected_artist):
    profile = connected_artist(expires_in=3599)
    go_quiet(profile, days=10)
    expires_at = reload(profile).sumup_expires_at
    ArtistProfile.objects.filter(pk=profile.pk).update(
        sumup_refresh_due_at=timezone.now() + timedelta(days=100)
    )

    tokens.access_token(profile.pk)

    assert when(reload(profile).sumup_refresh_due_at) == when(expires_at) - WINDOW


@pytest.mark.django_db
def test_a_use_is_written_at_most_once_an_hour(connected_artist):
    profile = connected_artist(expires_in=3 * 3600)
    go_quiet(profile, days=1)
    start = timezone.now()

    with time_machine.travel(start, tick=False):
        with CaptureQueriesContext(connection) as first:
            tokens.access_token(profile.pk)
        with CaptureQueriesContext(connection) as again:
            tokens.access_token(profile.pk)
    with (
        time_machine.travel(start + timedelta(minutes=59), tick=False),
        CaptureQueriesContext(connection) as within_the_hour,
    ):
        tokens.access_token(profile.pk)
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        tokens.access_token(profile.pk)

    def writes(queries: CaptureQueriesContext) -> int:
        return sum(q["sql"].lstrip().upper().startswith("UPDATE") for q in queries)

    assert writes(first) == 1
    assert writes(again) == 0
    assert writes(within_the_hour) == 0
    assert reload(profile).sumup_token_used_at == start + timedelta(minutes=61)


@pytest.mark.django_db
def test_the_getter_refuses_an_artist_without_a_working_connection(make_artist, connected_artist):
    never = make_artist()
    gone = connected_artist()
    gone.disconnect_sumup()

    for profile in (never, gone):
        with pytest.raises(tokens.TokenUnavailable, match="not connected"):
            tokens.access_token(profile.pk)
    with pytest.raises(tokens.TokenUnavailable, match="no such artist"):
        tokens.access_token(10**9)


@pytest.mark.django_db
def test_a_dead_grant_found_on_use_is_reported_not_handed_out(connected_artist, sumup):
    profile = connected_artist(expires_in=10)
    sumup.revoke_user(f"merchant{int(str(profile.sumup_merchant_code)[2:])}@example.com")

    with pytest.raises(tokens.TokenUnavailable, match="expired"):
        tokens.access_token(profile.pk)
    assert reload(profile).sumup_connection_status == ConnectionStatus.EXPIRED


# --- the sweep reads only due rows ---------------------------------------------------------


@pytest.mark.django_db
def test_rows_written_without_a_next_refresh_are_scheduled_by_the_sweep(connected_artist):
    """A grant written by code that keeps no next refresh (the release before) is
    scheduled as that release would have refreshed it."""
    soon = connected_artist(expires_in=300)
    later = connected_artist(expires_in=3599)
    ArtistProfile.objects.filter(pk__in=[soon.pk, later.pk]).update(sumup_refresh_due_at=None)

    report = sweep.run_sweep(exclusive=False)

    assert report.scheduled == 2
    assert when(reload(later).sumup_refresh_due_at) == when(reload(later).sumup_expires_at) - WINDOW
    assert soon.pk in report.enqueued  # expiring within the window: due at once
    assert sweep.schedule_unscheduled() == 0


def plan(sql: str, params: tuple[Any, ...]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
def test_the_due_condition_is_the_indexs_not_a_filter(connected_artist):
    """The sweep's claim and the headroom's count read due rows only: the due time is an
    Index Cond of the partial index, and the working-connection conditions are its
    predicate, not a filter over other rows (the benchmark shows it at 1,000,000)."""
    connected_artist()
    now = timezone.now()
    claim = (
        refresh.due_profiles(now)
        .order_by("sumup_refresh_due_at", "pk")
        .values_list("pk", flat=True)[:500]
    )
    claim_plan = plan(*claim.query.sql_with_params())
    count_plan = plan(
        *refresh.due_profiles(now + timedelta(hours=1)).values("pk").query.sql_with_params()
    )

    for shown in (claim_plan, count_plan):
        assert "artistprofile_sumup_next_idx" in shown, shown
        assert "Index Cond: (sumup_refresh_due_at <=" in shown, shown
        assert "Filter" not in shown, shown


@pytest.mark.django_db
def test_the_headroom_counts_what_falls_due_within_the_hour(connected_artist):
    connected_artist(expires_in=1800)  # due in 20 minutes
    connected_artist(expires_in=3 * 3600)  # due in 2 h 50
    quiet = connected_artist(expires_in=1800)
    go_quiet(quiet, days=5)
    assert refresh.refresh_profile(quiet.pk, only_if_due=False).outcome is Outcome.REFRESHED

    assert headroom.measure().needed_per_hour == 1


@pytest.mark.django_db
def test_an_active_artist_due_early_in_the_hour_counts_twice(connected_artist):
    """Refreshed now, an hour's token falls due again 50 minutes later, inside the hour."""
    connected_artist(expires_in=300)  # active, due now and again in 50 minutes
    renewal = connected_artist(expires_in=3 * 3600)
    go_quiet(renewal, days=10)
    ArtistProfile.objects.filter(pk=renewal.pk).update(sumup_refresh_due_at=timezone.now())

    assert headroom.measure().needed_per_hour == 2 + 1
