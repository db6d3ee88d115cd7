"""Plain words for a connection SumUp needs renewed: staff read "Needs reconnecting",
artists read what happened and what to do, and nothing an artist reads (their pages, the
reconnect email) says "token"."""

import re
from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import ArtistProfile, ConnectionStatus, User
from campaigns.reconnect_notice import render_reconnect_message

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
PLAIN_REASON = "SumUp needs you to reconnect your account so ticket buyers can keep paying by card."


def words(html: str) -> str:
    """What a reader sees: the text without tags (a form's csrfmiddlewaretoken is no word)."""
    without_code = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without_code))


def lapsed(make_artist: Callable[..., ArtistProfile], status: str) -> ArtistProfile:
    return make_artist(
        display_name="Nina Blue", sumup_connection_status=status, sumup_merchant_code="M1"
    )


def test_it_labels_the_lapsed_status_needs_reconnecting_for_staff(client, make_artist):
    artist = lapsed(make_artist, ConnectionStatus.EXPIRED)
    client.force_login(User.objects.create_superuser("root", "root@example.com", PASSWORD))

    listed = client.get("/admin/accounts/artistprofile/").text
    changed = client.get(f"/admin/accounts/artistprofile/{artist.pk}/change/").text

    assert ConnectionStatus.EXPIRED.label == "Needs reconnecting"
    assert re.search(r"<td class=\"field-[^\"]*\">Needs reconnecting</td>", listed), listed
    assert "Needs reconnecting" in changed
    assert "Token expired" not in listed and "Token expired" not in changed


@pytest.mark.parametrize(
    "status", [ConnectionStatus.EXPIRED, ConnectionStatus.ERROR, ConnectionStatus.NOT_CONNECTED]
)
def test_it_never_says_token_on_an_artists_pages(make_artist, status):
    artist = lapsed(make_artist, status)
    client = Client()
    client.force_login(artist.user)

    pages = {
        path: client.get(path) for path in ("/accounts/dashboard/", "/accounts/sumup/connect/")
    }

    for path, page in pages.items():
        assert page.status_code == 200, path
        assert "token" not in words(page.text).lower(), path


def test_it_tells_a_lapsed_artist_in_the_email_what_happened_and_what_to_do(make_artist):
    message = render_reconnect_message(lapsed(make_artist, ConnectionStatus.EXPIRED))

    assert PLAIN_REASON in message.text and PLAIN_REASON in words(message.html)
    assert "reconnect your SumUp account from your dashboard" in message.text
    assert message.subject == (
        "Action needed: reconnect your SumUp account to keep selling tickets"
    )
    assert re.search(r'<a href="[^"]+/accounts/dashboard/"[^>]*>Reconnect SumUp</a>', message.html)
    assert "Needs reconnecting" not in message.text, "the staff's label is not the artist's"


@pytest.mark.parametrize(
    ("status", "asks"),
    [
        (ConnectionStatus.EXPIRED, "reconnect"),
        (ConnectionStatus.ERROR, "reconnect"),
        (ConnectionStatus.NOT_CONNECTED, "connect"),
    ],
)
def test_it_never_says_token_in_the_reconnect_email(make_artist, status, asks):
    message = render_reconnect_message(lapsed(make_artist, status))

    for part in (message.subject, message.text, words(message.html)):
        assert "token" not in part.lower(), part
    assert f"Action needed: {asks} your SumUp account" in message.subject
    assert f"{asks} your SumUp account from your dashboard" in message.text
