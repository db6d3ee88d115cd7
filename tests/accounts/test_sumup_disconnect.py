"""Disconnecting SumUp asks first: the dashboard's Disconnect leads to a page that says
what it costs, whose CSRF-protected POST disconnects and whose way back changes nothing;
the dashboard offers only the actions the artist's status allows."""

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ArtistProfile, ConnectionStatus

pytestmark = pytest.mark.django_db

PAGE = "/accounts/sumup/disconnect/"
CONSEQUENCE = "Ticket sales will stop taking card payments until you reconnect."


@pytest.fixture
def connected(make_artist: Callable[..., ArtistProfile]) -> ArtistProfile:
    return make_artist(
        display_name="Nina Blue",
        sumup_connection_status=ConnectionStatus.CONNECTED,
        sumup_access_token="access-held",
        sumup_refresh_token="refresh-held",
        sumup_expires_at=timezone.now() + timedelta(hours=1),
        sumup_merchant_code="MH4H92C7",
        sumup_business_name="Harbour Lights Ltd",
        sumup_connected_at=timezone.now() - timedelta(days=2),
    )


def logged_in(profile: ArtistProfile, *, enforce_csrf_checks: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(profile.user)
    return client


def reload(profile: ArtistProfile) -> ArtistProfile:
    return ArtistProfile.objects.get(pk=profile.pk)


def actions_on_the_card(page: str) -> dict[str, str]:
    """Each link or button inside the SumUp card, by id: its text."""
    card = re.search(r'<section class="card" id="sumup-card".*?</section>', page, re.S)
    assert card, page
    return {
        found.group(2): re.sub(r"\s+", " ", found.group(3)).strip()
        for found in re.finditer(r"<(a|button)\b[^>]*\bid=\"([^\"]+)\"[^>]*>(.*?)</\1>", card[0])
    }


def test_it_asks_before_disconnecting_and_says_what_it_costs(connected, mailoutbox):
    page = logged_in(connected).get(PAGE)

    assert page.status_code == 200
    assert re.search(r"<h1>Disconnect SumUp\?</h1>", page.text)
    assert CONSEQUENCE in page.text
    assert "MH4H92C7 (Harbour Lights Ltd)" in page.text
    form = re.search(rf'<form method="post" action="{PAGE}">(.*?)</form>', page.text, re.S)
    assert form, page.text
    assert 'name="csrfmiddlewaretoken"' in form[1]
    assert re.search(r'<button class="button danger"[^>]*>Disconnect SumUp</button>', form[1])
    assert re.search(
        r'<a [^>]*href="/accounts/dashboard/"[^>]*>Keep SumUp connected</a>', page.text
    )
    stored = reload(connected)
    assert stored.is_sumup_connected and stored.sumup_merchant_code == "MH4H92C7"
    assert mailoutbox == []


def test_it_changes_nothing_when_the_artist_keeps_sumup(connected, mailoutbox):
    client = logged_in(connected)
    before = reload(connected)

    client.get(PAGE)
    dashboard = client.get("/accounts/dashboard/")

    after = reload(connected)
    assert 'id="sumup-status">Connected<' in dashboard.text
    assert (after.sumup_token_version, after.sumup_connected_at, after.sumup_access_token) == (
        before.sumup_token_version,
        before.sumup_connected_at,
        before.sumup_access_token,
    )
    assert mailoutbox == []


def test_it_disconnects_on_the_pages_post_and_emails_the_artist(
    connected, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(connected).post(PAGE, follow=True)

    assert response.redirect_chain == [("/accounts/dashboard/", 302)]
    assert "SumUp disconnected and our access deleted." in response.text
    assert 'id="sumup-status">Not connected<' in response.text
    stored = reload(connected)
    assert stored.sumup_status == ConnectionStatus.NOT_CONNECTED
    assert stored.sumup_access_token is None and stored.sumup_merchant_code is None
    [email] = mailoutbox
    assert "SumUp disconnected" in email.subject and "MH4H92C7" in email.body


def test_it_refuses_a_post_without_the_csrf_token_and_keeps_the_connection(connected, mailoutbox):
    response = logged_in(connected, enforce_csrf_checks=True).post(PAGE)

    assert response.status_code == 403
    assert reload(connected).is_sumup_connected
    assert mailoutbox == []


def test_it_sends_an_artist_with_nothing_to_disconnect_back_to_the_dashboard(make_artist):
    artist = make_artist()

    response = logged_in(artist).get(PAGE, follow=True)

    assert response.redirect_chain == [("/accounts/dashboard/", 302)]
    assert "SumUp was not connected." in response.text
    assert CONSEQUENCE not in response.text


def test_it_keeps_the_page_from_visitors_and_from_users_who_are_not_artists(
    client, django_user_model, connected
):
    assert client.get(PAGE)["Location"] == f"/accounts/login/?next={PAGE}"
    client.force_login(django_user_model.objects.create_user("fan", "fan@example.com", "pw-1"))
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE).status_code == 403
    assert reload(connected).is_sumup_connected


def test_it_offers_a_connected_artist_disconnect_only_and_as_a_link_to_the_question(connected):
    page = logged_in(connected).get("/accounts/dashboard/").text

    assert actions_on_the_card(page) == {"sumup-disconnect": "Disconnect"}
    assert re.search(rf'<a [^>]*href="{PAGE}"[^>]*id="sumup-disconnect"', page)
    assert not re.search(rf'<form[^>]*action="{PAGE}"', page), "one click must not disconnect"


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        (ConnectionStatus.NOT_CONNECTED, {"sumup-connect": "Connect"}),
        (ConnectionStatus.EXPIRED, {"sumup-connect": "Reconnect"}),
        (ConnectionStatus.ERROR, {"sumup-connect": "Reconnect"}),
    ],
)
def test_it_offers_an_artist_without_a_working_connection_only_to_connect(
    make_artist, status, offered
):
    merchant = "" if status == ConnectionStatus.NOT_CONNECTED else "MH4H92C7"
    artist = make_artist(sumup_connection_status=status, sumup_merchant_code=merchant or None)

    page = logged_in(artist).get("/accounts/dashboard/").text

    assert actions_on_the_card(page) == offered
    assert PAGE not in page
