"""The staff overview: its figures from real rows and Redis counts (connections now and
by day, refresh outcomes by hour, the sweep's live state, campaigns' send rates and
conversion), the page that draws them, and who sees which of its sections."""

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import ArtistProfile, User
from accounts.sumup import refresh_outcomes
from accounts.sumup.refresh import Outcome
from backfills.models import BackfillRun, RunStatus
from campaigns.models import Campaign, Recipient
from events import shared_redis
from jobs.overview import record_connections
from operations.models import ConnectionDay
from operations.overview import campaign_figures, connections, refreshes

if TYPE_CHECKING:
    from tests.support.polling import wait_for
else:
    from support.polling import wait_for

pytestmark = pytest.mark.django_db

S = Recipient.Status
PAGE = "/admin/overview/"
STATE = "/admin/overview/refresh.json"
MakeArtist = Callable[..., ArtistProfile]


@pytest.fixture(autouse=True)
def clean_redis() -> None:
    """Refresh outcomes by hour and the sweep's time live in the test Redis database."""
    shared_redis.client().flushdb()


def _artists(make_artist: MakeArtist, **by_status: int) -> None:
    for status, n in by_status.items():
        for _ in range(n):
            make_artist(sumup_connection_status=status)


def _count_at(moment: datetime, outcome: Outcome, times: int = 1) -> None:
    with time_machine.travel(moment, tick=False):
        for _ in range(times):
            refresh_outcomes.count(outcome)


def _staff(*permissions: str) -> User:
    user = User.objects.create_user(
        f"staff-{len(permissions)}-{time.monotonic_ns()}", is_staff=True
    )
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


# --- connections ----------------------------------------------------------------------


def test_it_counts_connections_by_status_with_every_status_present(make_artist):
    _artists(make_artist, connected=3, expired=2, not_connected=1)

    assert connections.counts_now() == {
        "connected": 3,
        "expired": 2,
        "error": 0,
        "not_connected": 1,
    }


def test_it_keeps_one_count_per_day_and_status_replacing_the_days_earlier_one(make_artist):
    _artists(make_artist, connected=1, error=1)
    connections.record_day()
    make_artist(sumup_connection_status="connected")

    connections.record_day()

    today = timezone.localdate()
    kept = dict(ConnectionDay.objects.filter(day=today).values_list("status", "count"))
    assert kept == {"connected": 2, "expired": 0, "error": 1, "not_connected": 0}
    assert ConnectionDay.objects.count() == 4


def test_it_shows_days_before_history_began_and_days_missed_as_no_data_never_zero(make_artist):
    _artists(make_artist, connected=2)
    today = timezone.localdate()
    for back in (5, 3):
        moment = timezone.now() - timedelta(days=back)
        connections.record_day(moment)

    days = connections.history(today=today)

    assert len(days) == 30 and days[-1].day == today and days[0].day == today - timedelta(29)
    counted = {day.day: day.counts for day in days if day.counts is not None}
    expected = {"connected": 2, "expired": 0, "error": 0, "not_connected": 0}
    assert counted == {today - timedelta(5): expected, today - timedelta(3): expected}
    assert [day.counts for day in days[:24]] == [None] * 24, "before history began"
    missed = [days[n].counts for n in (25, 27, 28, 29)]
    assert missed == [None] * 4, "the days nobody counted"


def test_it_counts_today_when_the_page_finds_it_missing_and_only_then(make_artist):
    _artists(make_artist, expired=1)

    assert connections.record_day_if_missing() is True
    make_artist(sumup_connection_status="expired")
    assert connections.record_day_if_missing() is False

    today = ConnectionDay.objects.get(day=timezone.localdate(), status="expired")
    assert today.count == 1


@pytest.mark.django_db(transaction=True)
def test_it_keeps_todays_count_when_a_worker_runs_beats_hourly_task(project_worker, make_artist):
    _artists(make_artist, connected=1, not_connected=2)

    record_connections.delay()

    wait_for(lambda: ConnectionDay.objects.count() >= 4, "the worker to count the connections", 20)
    kept = dict(ConnectionDay.objects.values_list("status", "count"))
    assert kept == {"connected": 1, "expired": 0, "error": 0, "not_connected": 2}


# --- refresh outcomes -----------------------------------------------------------------


def test_it_counts_outcomes_by_hour_and_still_since_the_last_sweep():
    ten = datetime(2026, 12, 4, 10, 15, tzinfo=UTC)
    _count_at(ten, Outcome.REFRESHED, 3)
    _count_at(ten + timedelta(minutes=30), Outcome.OVER_BUDGET)
    _count_at(ten + timedelta(hours=1), Outcome.ERROR)

    hours = refresh_outcomes.by_hour(24, now=ten + timedelta(hours=1, minutes=20))

    assert len(hours) == 24
    assert hours[-1].start == datetime(2026, 12, 4, 11, tzinfo=UTC)
    assert hours[-1].counts == {"error": 1}
    assert hours[-2].counts == {"refreshed": 3, "over_budget": 1}
    assert all(hour.counts == {} for hour in hours[:-2])
    assert refresh_outcomes.pending() == {"refreshed": 3, "over_budget": 1, "error": 1}
    key = refresh_outcomes.hour_key(ten)
    assert 48 * 3600 < cast(int, shared_redis.client().ttl(key)) <= 49 * 3600


def test_it_counts_the_last_hour_as_the_last_sixty_minutes_across_two_hours():
    ten = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    _count_at(ten + timedelta(minutes=20), Outcome.REFRESHED)  # 70 minutes before: out
    _count_at(ten + timedelta(minutes=40), Outcome.EXPIRED)
    _count_at(ten + timedelta(minutes=70), Outcome.ERROR)
    _count_at(ten + timedelta(minutes=90), Outcome.REFRESHED)

    assert refresh_outcomes.last_hour(ten + timedelta(minutes=90)) == {
        "expired": 1,
        "error": 1,
        "refreshed": 1,
    }


def test_it_tells_when_the_sweep_ran_and_is_next_due_who_waits_and_what_the_last_hour_did(
    make_artist, settings
):
    settings.SUMUP_REFRESH_SWEEP_INTERVAL = 120
    due = make_artist()
    due.update_sumup_connection({"access_token": "a1", "refresh_token": "r1", "expires_in": 60})
    queued = make_artist()
    queued.update_sumup_connection({"access_token": "a2", "refresh_token": "r2", "expires_in": 90})
    ArtistProfile.objects.filter(pk=queued.pk).update(sumup_refresh_enqueued_at=timezone.now())
    fresh = make_artist()
    fresh.update_sumup_connection({"access_token": "a3", "refresh_token": "r3", "expires_in": 7200})
    refresh_outcomes.count(Outcome.REFRESHED)
    refresh_outcomes.count(Outcome.EXPIRED)
    refresh_outcomes.count(Outcome.OVER_BUDGET)
    assert refreshes.status()["last_sweep_at"] is None
    refresh_outcomes.take()
    swept = refresh_outcomes.last_taken()
    assert swept is not None and abs(swept.timestamp() - time.time()) < 5

    state = refreshes.status(now=swept + timedelta(seconds=30))

    assert state["last_sweep_at"] == swept.isoformat()
    assert state["next_sweep_at"] == (swept + timedelta(seconds=120)).isoformat()
    assert state["next_sweep_overdue"] is False
    assert (state["due_now"], state["queued"]) == (2, 1)
    assert state["last_hour"] == {"refreshed": 1, "expired": 1, "error": 0}
    assert state["text"]["last_sweep"].endswith(", 30 s ago")
    assert state["text"]["next_sweep"].endswith(", in 1 min")
    late = refreshes.status(now=swept + timedelta(seconds=200))
    assert late["next_sweep_overdue"] is True
    assert late["text"]["next_sweep"].endswith(", overdue by 1 min")


# --- campaigns ------------------------------------------------------------------------


def _recipient(
    campaign: Campaign, artist: ArtistProfile | None, status: str, sent_at: datetime | None
) -> Recipient:
    return Recipient.objects.create(
        campaign=campaign,
        artist=artist,
        email=f"r{time.monotonic_ns()}@example.com",
        status=status,
        sent_at=sent_at,
    )


def test_it_counts_who_connected_within_1_7_and_30_days_of_their_email(
    make_artist, django_assert_num_queries
):
    campaign = Campaign.objects.create(name="Reconnect", status=Campaign.Status.DONE)
    sent = timezone.now() - timedelta(days=60)

    def artist_connected_after(delay: timedelta | None, status: str = "connected") -> Any:
        at = sent + delay if delay is not None else None
        return make_artist(sumup_connection_status=status, sumup_connected_at=at)

    for delay, status in [
        (timedelta(hours=12), S.DELIVERED),  # within 1, 7 and 30 days
        (timedelta(days=3), S.SENT),  # within 7 and 30
        (timedelta(days=20), S.DELIVERED),  # within 30
        (timedelta(days=40), S.SENT),  # too late for any window
        (timedelta(days=-2), S.SENT),  # connected before the email
        (None, S.UNSUBSCRIBED),
        (None, S.BOUNCED),
    ]:
        _recipient(campaign, artist_connected_after(delay), status, sent)
    lapsed = artist_connected_after(timedelta(hours=1), status="expired")
    _recipient(campaign, lapsed, S.SENT, sent)  # connected in time, but lapsed since
    _recipient(campaign, artist_connected_after(timedelta(hours=1)), S.FAILED, None)
    _recipient(campaign, None, S.COMPLAINED, sent)  # the artist was deleted since
    other = Campaign.objects.create(name="Other", status=Campaign.Status.RUNNING)
    _recipient(other, artist_connected_after(timedelta(hours=2)), S.SENT, sent)
    Campaign.objects.create(name="Draft")

    with django_assert_num_queries(2):
        found = campaign_figures.conversions()

    assert [c.campaign.name for c in found] == ["Other", "Reconnect"], "newest first, no draft"
    other_figures, reconnect = found
    assert reconnect.emailed == 9
    assert reconnect.connected_within == {1: 1, 7: 2, 30: 3}
    assert (reconnect.unsubscribed, reconnect.bounced) == (1, 1)
    assert (other_figures.emailed, other_figures.connected_within) == (1, {1: 1, 7: 1, 30: 1})


def test_it_measures_each_current_campaigns_send_rate_against_its_limit():
    now = timezone.now()
    running = Campaign.objects.create(
        name="Fast", status=Campaign.Status.RUNNING, rate_limit="600/min", started_at=now
    )
    for _ in range(20):
        _recipient(running, None, S.SENT, now - timedelta(seconds=2))
    Campaign.objects.create(name="Held", status=Campaign.Status.PAUSED, rate_limit="")
    Campaign.objects.create(name="Over", status=Campaign.Status.DONE, rate_limit="10/s")

    rates = {r.campaign.name: r for r in campaign_figures.send_rates()}

    assert set(rates) == {"Fast", "Held"}
    assert (rates["Fast"].per_second, rates["Fast"].limit_per_second) == (2.0, 10.0)
    assert rates["Fast"].limit_text == "600/min"
    assert (rates["Held"].per_second, rates["Held"].limit_per_second) == (0.0, None)


# --- the page -------------------------------------------------------------------------


@pytest.fixture
def everything(make_artist: MakeArtist) -> None:
    _artists(make_artist, connected=4, expired=2, error=1, not_connected=3)
    ConnectionDay.objects.create(
        day=timezone.localdate() - timedelta(days=2),
        status="connected",
        count=3,
        recorded_at=timezone.now(),
    )
    refresh_outcomes.count(Outcome.REFRESHED)
    refresh_outcomes.count(Outcome.REFRESHED)
    refresh_outcomes.count(Outcome.ERROR)
    campaign = Campaign.objects.create(
        name="Spring reconnect", status=Campaign.Status.RUNNING, rate_limit="10/s"
    )
    sent = timezone.now() - timedelta(days=2)
    artist = make_artist(sumup_connection_status="connected", sumup_connected_at=sent)
    _recipient(campaign, artist, S.DELIVERED, sent)
    _recipient(campaign, None, S.BOUNCED, sent)
    BackfillRun.objects.create(
        backfill="sumup_connection_status",
        status=RunStatus.RUNNING,
        rows_done=4_500,
        rows_total=10_000,
    )


def _svg_labels(html: str) -> list[str]:
    return re.findall(r'<svg [^>]*role="img" aria-label="([^"]*)"', html)


def test_it_draws_every_section_with_its_figures(everything, admin_client: Client):
    response = admin_client.get(PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    labels = _svg_labels(html)
    assert len(labels) == 6
    assert (
        "SumUp connections now: 5 connected, 2 needs reconnecting, 1 connection error, "
        "3 not connected." in labels
    )
    history = next(label for label in labels if label.startswith("SumUp connections by day"))
    assert "counted on 2 of them, no data for 28." in history, "the page counted today"
    refreshes_label = next(label for label in labels if label.startswith("Token refresh"))
    assert "2 refreshed (at most 2 in an hour); 0 expired; 1 error" in refreshes_label
    assert any("Spring reconnect: 0/s of 10/s (10/s), running" in label for label in labels)
    assert any(
        "Spring reconnect: 2 emailed; connected 1 within 1 day, 1 within 7 days, "
        "1 within 30 days; 0 unsubscribed, 1 bounced." in label
        for label in labels
    )
    assert any(
        "sumup_connection_status 45% done (4,500 of 10,000 rows), running" in label
        for label in labels
    )
    assert html.count("<td>no data</td>") == 28 * 4
    assert "<td>1 (50%)</td>" in html, "the conversion table"
    assert '<dd data-refresh="refreshed">2</dd>' in html
    assert '<dd data-refresh="error">1</dd>' in html
    assert 'nonce="' in html and "<script>" not in html


def test_it_gives_the_page_and_its_poll_one_payload_of_the_sweeps_state(everything, admin_client):
    html = admin_client.get(PAGE).content.decode()
    state = admin_client.get(STATE).json()

    assert set(state) >= {
        "last_sweep_at",
        "next_sweep_at",
        "due_now",
        "queued",
        "last_hour",
        "text",
    }
    assert state["last_hour"] == {"refreshed": 2, "expired": 0, "error": 1}
    for key in ("last_sweep", "next_sweep", "due_now", "queued", "refreshed", "error"):
        assert f'data-refresh="{key}">{state["text"][key]}</dd>' in html


def test_it_is_linked_from_the_admin_index(admin_client):
    html = admin_client.get("/admin/").content.decode()

    assert f'<a href="{PAGE}">Overview: connections, refreshes, campaigns</a>' in html


def test_it_shows_staff_only_the_sections_of_the_models_they_may_view(everything, client):
    client.force_login(_staff("campaigns.view_campaign"))

    html = client.get(PAGE).content.decode()

    assert "Spring reconnect" in html
    assert "SumUp connections now" not in html and "Token refresh" not in html
    assert "Backfills under way" not in html and "refresh.json" not in html
    assert client.get(STATE).status_code == 403
    counted_today = ConnectionDay.objects.filter(day=timezone.localdate())
    assert not counted_today.exists(), "no count without the artists' permission"

    client.force_login(_staff("accounts.view_artistprofile", "backfills.view_backfillrun"))
    html = client.get(PAGE).content.decode()
    assert "SumUp connections now" in html and "sumup_connection_status 45%" in html
    assert "Spring reconnect" not in html
    assert client.get(STATE).status_code == 200


def test_it_shows_staff_with_no_permission_no_section(everything, client):
    client.force_login(_staff())

    response = client.get(PAGE)

    assert response.status_code == 200
    assert "None of this page's sections is open to you" in response.text
    assert 'role="img"' not in response.text


def test_it_sends_anyone_but_staff_to_the_admin_login(everything, client, make_artist):
    anonymous = client.get(PAGE)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert client.get(STATE).status_code == 302

    client.force_login(make_artist().user)
    assert client.get(PAGE).status_code == 302
    assert client.get(STATE).status_code == 302


def test_it_draws_a_campaign_with_no_limit_and_no_email_yet(admin_client):
    Campaign.objects.create(name="Unlimited", status=Campaign.Status.PAUSED, rate_limit="")

    html = admin_client.get(PAGE).content.decode()

    assert "Unlimited: 0/s, no limit, paused" in html
    assert "Unlimited: 0 emailed; connected 0 within 1 day" in html
    assert "No backfill is under way." in html
