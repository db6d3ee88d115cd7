"""The SumUp callback's `state` is whatever the query string says. It is compared with
the pending flows in constant time, as bytes, so a state that is not ASCII is refused
like any other unknown one (the dashboard says the response does not match a
connection the artist started) and never crashes the callback."""

from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client

from accounts.models import ArtistProfile

pytestmark = pytest.mark.django_db


@pytest.fixture
def started(client: Client, make_artist: Any, sumup: Any) -> Client:
    """An artist with a connection started and so a state pending in the session."""
    artist: ArtistProfile = make_artist()
    client.force_login(artist.user)
    assert client.post("/accounts/sumup/connect/").status_code == 302
    return client


@pytest.mark.parametrize("state", ["état-forgé", "\u00e9" * 43, "日本", "\ufffd\x00"])
def test_a_state_that_is_not_ascii_is_refused_without_a_server_error(
    started: Client, sumup: Any, state: str
):
    response = started.get(f"/accounts/sumup/callback/?state={quote(state)}&code=stolen")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/dashboard/"
    page = started.get(response["Location"])
    assert "does not match a connection you started" in page.text
    assert sumup.state.token_calls() == 0
