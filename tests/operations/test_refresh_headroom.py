"""The SumUp budget's headroom: refreshes the next hour needs against what an hour of the
sweep's paced share allows (accounts.sumup.headroom), on the overview and in /metrics."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import ArtistProfile
from accounts.sumup import headroom
from operations.overview import refreshes

pytestmark = pytest.mark.django_db


def connect(make_artist, *, expires_in: int) -> ArtistProfile:
    profile: ArtistProfile = make_artist()
    profile.update_sumup_connection(
        {"access_token": "at", "refresh_token": "rt", "expires_in": expires_in}
    )
    return profile


def test_it_counts_the_connections_due_within_the_hour_against_the_paced_share(
    make_artist, settings
):
    settings.SUMUP_API_RATE_LIMIT = "20/s"  # a share of 19, paced one below it: 18/s
    settings.SUMUP_REFRESH_WINDOW = 600
    connect(make_artist, expires_in=60)  # due now, and again 50 minutes later: twice
    connect(make_artist, expires_in=3_000)  # due within the hour (its window starts then)
    connect(make_artist, expires_in=4_100)  # due 4,100 - 600 s from now: inside the hour
    connect(make_artist, expires_in=5_000)  # due after the hour
    renewal = connect(make_artist, expires_in=5_000)
    issued_at = timezone.now() - timedelta(seconds=settings.SUMUP_REFRESH_TOKEN_RENEW_AFTER - 1_800)
    # As the row reads when its refresh token falls due for renewal in half an hour.
    ArtistProfile.objects.filter(pk=renewal.pk).update(
        sumup_refresh_token_issued_at=issued_at,
        sumup_refresh_due_at=issued_at
        + timedelta(seconds=settings.SUMUP_REFRESH_TOKEN_RENEW_AFTER),
    )
    make_artist()  # not connected: never refreshed

    measured = headroom.measure()

    assert measured.needed_per_hour == 5
    assert measured.available_per_hour == 18 * 3_600
    assert not measured.short


def test_a_budget_too_small_for_what_falls_due_is_short_and_staff_are_warned(make_artist, settings):
    settings.SUMUP_API_RATE_LIMIT = "3/h"  # a share of 3, paced at 2 an hour
    for _ in range(3):
        connect(make_artist, expires_in=1_500)  # due once within the hour
    cache.delete(headroom.CACHE_KEY)

    state = refreshes.status()

    assert state["budget"] == {
        "needed_per_hour": 3,
        "available_per_hour": 2,
        "short": True,
        "used": 1.5,
    }
    assert state["text"]["budget"] == "3 needed of 2 calls (150%)"
    assert state["text"]["budget_warning"].startswith("The SumUp budget is short: 3 refreshes")


def test_the_count_is_kept_for_a_minute_so_scrapes_do_not_repeat_it(make_artist):
    cache.delete(headroom.CACHE_KEY)
    connect(make_artist, expires_in=1_500)  # due once within the hour
    assert headroom.current().needed_per_hour == 1

    connect(make_artist, expires_in=1_500)  # due once within the hour

    assert headroom.current().needed_per_hour == 1, "read from the cache"
    cache.delete(headroom.CACHE_KEY)
    assert headroom.current().needed_per_hour == 2


def test_a_scraper_sees_needed_and_available_calls_per_hour(scraper, make_artist, settings):
    settings.SUMUP_API_RATE_LIMIT = "20/s"
    connect(make_artist, expires_in=1_500)  # due once within the hour
    cache.delete(headroom.CACHE_KEY)

    text = scraper.get("/metrics").text

    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert values["jersey_sumup_refresh_calls_needed_per_hour"] == 1
    assert values["jersey_sumup_refresh_calls_available_per_hour"] == 18 * 3_600
