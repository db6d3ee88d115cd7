"""Starting the SumUp flow: who may, and what the redirect to SumUp carries."""

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.sumup import oauth_flow


@pytest.fixture
def sumup_settings(settings):
    settings.SUMUP_CLIENT_ID = "jersey-events-test"
    settings.SUMUP_CLIENT_SECRET = "test-secret"
    settings.SUMUP_BASE_URL = "http://sumup.invalid"
    settings.SUMUP_REDIRECT_URI = "http://testserver/accounts/sumup/callback/"
    return settings


@pytest.fixture
def artist_client(client, make_artist):
    profile = make_artist()
    client.force_login(profile.user)
    client.profile = profile
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "head"])
def test_anonymous_visitors_are_sent_to_log_in_and_back(client, method):
    for path in ("/accounts/sumup/connect/", "/accounts/sumup/callback/", "/accounts/dashboard/"):
        response = getattr(client, method)(path)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.django_db
def test_a_non_artist_gets_a_clear_page_not_the_flow(client, django_user_model):
    customer = django_user_model.objects.create_user("fan", "fan@example.com", "pw-fan-123")
    client.force_login(customer)
    for path in ("/accounts/dashboard/", "/accounts/sumup/connect/"):
        response = client.get(path)
        assert response.status_code == 403
        assert "This page is for artists" in response.text
    assert client.post("/accounts/sumup/connect/").status_code == 403
    assert oauth_flow.SESSION_KEY not in client.session


@pytest.mark.django_db
def test_get_explains_connecting_and_starts_nothing(artist_client, sumup_settings):
    response = artist_client.get("/accounts/sumup/connect/")
    assert response.status_code == 200
    assert "Connect your SumUp account" in response.text
    assert oauth_flow.SESSION_KEY not in artist_client.session


@pytest.mark.django_db
def test_the_flow_starts_only_from_a_csrf_protected_post(make_artist, sumup_settings):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(make_artist().user)
    assert strict.post("/accounts/sumup/connect/").status_code == 403
    assert oauth_flow.SESSION_KEY not in strict.session


@pytest.mark.django_db
def test_post_redirects_to_sumup_with_state_and_pkce(artist_client, sumup_settings):
    response = artist_client.post("/accounts/sumup/connect/")

    assert response.status_code == 302
    url = urlsplit(response["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://sumup.invalid/authorize"
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "jersey-events-test"
    assert query["redirect_uri"] == "http://testserver/accounts/sumup/callback/"
    assert query["scope"] == "payments transactions.history user.app-settings user.profile_readonly"
    assert query["code_challenge_method"] == "S256"
    [flow] = artist_client.session[oauth_flow.SESSION_KEY]
    assert query["state"] == flow["state"] and len(flow["state"]) >= 32
    expected_challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(flow["code_verifier"].encode()).digest())
        .rstrip(b"=")
        .decode()
    )
    assert query["code_challenge"] == expected_challenge
    assert flow["user_id"] == artist_client.profile.user_id


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("candidate", "kept"),
    [
        ("/events/42/", "/events/42/"),
        ("https://evil.example/steal", ""),
        ("//evil.example/", ""),
        ("/\\evil.example", ""),
        ("javascript:alert(1)", ""),
    ],
)
def test_only_a_same_site_next_is_kept(artist_client, sumup_settings, candidate, kept):
    artist_client.post("/accounts/sumup/connect/", {"next": candidate})
    [flow] = artist_client.session[oauth_flow.SESSION_KEY]
    assert flow["next_url"] == kept


@pytest.mark.django_db
def test_an_unconfigured_site_says_so_instead_of_sending_the_artist_away(artist_client, settings):
    settings.SUMUP_CLIENT_ID = ""
    response = artist_client.post("/accounts/sumup/connect/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/dashboard/"
    assert "not configured" in response.text


@pytest.mark.django_db
def test_at_most_five_flows_are_pending_at_once(artist_client, sumup_settings):
    for _ in range(8):
        artist_client.post("/accounts/sumup/connect/")
    assert len(artist_client.session[oauth_flow.SESSION_KEY]) == oauth_flow.MAX_PENDING
