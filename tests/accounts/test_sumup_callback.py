"""Every branch of the SumUp callback, against the fake SumUp over real HTTP."""

import json
import logging
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.sessions.models import Session

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup import oauth_flow

MERCHANT = "MH4H92C7"


@pytest.fixture
def artist(make_artist):
    return make_artist(display_name="Nina Blue")


@pytest.fixture
def browser(client, artist):
    client.force_login(artist.user)
    return client


def start(browser, **form) -> str:
    """POST Connect; return the authorize URL the artist is sent to."""
    response = browser.post("/accounts/sumup/connect/", form)
    assert response.status_code == 302
    return str(response["Location"])


def callback_path(callback_url: str) -> str:
    parts = urlsplit(callback_url)
    assert parts.path == "/accounts/sumup/callback/"
    return f"{parts.path}?{parts.query}"


def connect(browser, sumup, **form):
    return browser.get(callback_path(sumup.approve(start(browser, **form))), follow=True)


def reload(profile: ArtistProfile) -> ArtistProfile:
    return ArtistProfile.objects.get(pk=profile.pk)


@pytest.mark.django_db
def test_the_good_path_connects_the_merchant_and_emails_the_artist(
    browser, artist, sumup, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = connect(browser, sumup)

    assert response.redirect_chain[-1] == ("/accounts/dashboard/", 302)
    assert "SumUp connected: merchant account MH4H92C7." in response.text
    assert 'id="sumup-status">Connected<' in response.text
    assert MERCHANT in response.text and "Harbour Lights Ltd" in response.text
    profile = reload(artist)
    assert profile.is_sumup_connected
    assert profile.sumup_merchant_code == MERCHANT
    assert profile.sumup_business_name == "Harbour Lights Ltd"
    assert profile.sumup_refresh_token and profile.sumup_expires_at
    assert sumup.state.token_calls(grant_type="authorization_code") == 1
    [email] = mailoutbox
    assert email.to == ["artist1@example.com"]
    assert "SumUp connected" in email.subject and MERCHANT in email.body
    assert (
        oauth_flow.SESSION_KEY not in browser.session or not browser.session[oauth_flow.SESSION_KEY]
    )


@pytest.mark.django_db
def test_a_missing_state_ends_on_the_dashboard_without_exchanging(browser, artist, sumup):
    callback = sumup.approve(start(browser))
    query = {k: v for k, v in (p.split("=") for p in urlsplit(callback).query.split("&"))}
    query.pop("state")
    response = browser.get(f"/accounts/sumup/callback/?{urlencode(query)}", follow=True)
    assert response.status_code == 200
    assert "does not match a connection you started" in response.text
    assert sumup.state.token_calls() == 0
    assert not reload(artist).is_sumup_connected


@pytest.mark.django_db
def test_a_forged_state_is_refused_and_the_real_flow_stays_usable(browser, artist, sumup):
    callback = sumup.approve(start(browser))
    forged = callback.replace("state=", "state=forged")
    response = browser.get(callback_path(forged), follow=True)
    assert "does not match a connection you started" in response.text
    assert sumup.state.token_calls() == 0

    browser.get(callback_path(callback))
    assert reload(artist).is_sumup_connected


@pytest.mark.django_db
def test_a_replayed_callback_is_refused_and_exchanges_nothing_more(browser, artist, sumup):
    callback = callback_path(sumup.approve(start(browser)))
    browser.get(callback)
    assert sumup.state.token_calls() == 1

    replay = browser.get(callback, follow=True)
    assert "already used" in replay.text
    assert sumup.state.token_calls() == 1


@pytest.mark.django_db
def test_a_state_started_by_another_user_is_refused(client, make_artist, sumup):
    victim, attacker = make_artist(), make_artist()
    client.force_login(attacker.user)
    callback = callback_path(sumup.approve(start(client)))
    client.force_login(victim.user)  # a new session: the attacker's state is not in it
    response = client.get(callback, follow=True)
    assert "does not match a connection you started" in response.text
    assert sumup.state.token_calls() == 0
    assert not reload(victim).is_sumup_connected


@pytest.mark.django_db
def test_an_expired_state_is_refused(browser, artist, sumup, monkeypatch):
    callback = callback_path(sumup.approve(start(browser)))
    session = browser.session
    flows = session[oauth_flow.SESSION_KEY]
    flows[0]["started_at"] -= oauth_flow.STATE_LIFETIME + 1
    session[oauth_flow.SESSION_KEY] = flows
    session.save()
    response = browser.get(callback, follow=True)
    assert "has expired" in response.text
    assert sumup.state.token_calls() == 0


@pytest.mark.django_db
def test_access_denied_ends_with_a_friendly_message(browser, artist, sumup):
    denied = sumup.approve(start(browser), allow=False)
    assert "error=access_denied" in denied
    response = browser.get(callback_path(denied), follow=True)
    assert "You did not allow the connection. Nothing was changed." in response.text
    assert sumup.state.token_calls() == 0
    assert reload(artist).sumup_connection_status == ConnectionStatus.NOT_CONNECTED


@pytest.mark.django_db
def test_other_errors_are_named_but_never_echoed_raw(browser, artist, sumup):
    authorize = start(browser)
    state = dict(p.split("=") for p in urlsplit(authorize).query.split("&"))["state"]
    response = browser.get(
        f"/accounts/sumup/callback/?state={state}&error=<script>alert(1)</script>", follow=True
    )
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text
    assert "SumUp reported an error (unknown)" in response.text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "SumUp did not accept this connection"),
        (500, "SumUp is not answering right now"),
        (503, "SumUp is not answering right now"),
    ],
)
def test_a_failed_code_exchange_changes_nothing(browser, artist, sumup, status, message):
    body = (
        {"error": "invalid_grant", "error_description": "code expired"} if status == 400 else None
    )
    sumup.add_fault("token", status, body=body)
    response = connect(browser, sumup)
    assert message in response.text
    assert reload(artist).sumup_connection_status == ConnectionStatus.NOT_CONNECTED


@pytest.mark.django_db
def test_a_code_exchange_timeout_changes_nothing(browser, artist, sumup, monkeypatch):
    monkeypatch.setattr("accounts.sumup.client.TIMEOUT", (1.0, 0.3))
    sumup.add_fault("token", None, delay_seconds=1.0)
    response = connect(browser, sumup)
    assert "SumUp is not answering right now" in response.text
    assert not reload(artist).is_sumup_connected


@pytest.mark.django_db
def test_a_memberships_failure_changes_nothing(browser, artist, sumup):
    sumup.add_fault("memberships", 502)
    response = connect(browser, sumup)
    assert "We could not read your SumUp merchant accounts" in response.text
    assert not reload(artist).is_sumup_connected


@pytest.mark.django_db
def test_without_the_memberships_endpoint_the_merchant_comes_from_me(browser, artist, sumup):
    sumup.configure(memberships_404=True)
    connect(browser, sumup)
    assert reload(artist).sumup_merchant_code == MERCHANT


@pytest.mark.django_db
def test_a_callback_merchant_code_not_among_the_memberships_is_not_trusted(browser, artist, sumup):
    callback = sumup.approve(start(browser)).replace(
        f"merchant_code={MERCHANT}", "merchant_code=MEVIL000"
    )
    browser.get(callback_path(callback))
    assert reload(artist).sumup_merchant_code == MERCHANT


@pytest.mark.django_db
def test_with_several_merchants_and_no_usable_code_the_artist_picks_one(browser, artist, sumup):
    sumup.add_user(
        "multi@example.com",
        [{"code": "MAAA1111", "name": "Gig Nights"}, {"code": "MBBB2222", "name": "Studio Sales"}],
    )
    callback = sumup.approve(start(browser), user="multi@example.com")
    callback = callback.replace("merchant_code=MAAA1111", "merchant_code=")
    response = browser.get(callback_path(callback), follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/sumup/merchant/"
    assert "Gig Nights" in response.text and "Studio Sales" in response.text
    assert not reload(artist).is_sumup_connected
    held_in_sessions = json.dumps([session.get_decoded() for session in Session.objects.all()])
    assert "sumup_merchant_choice" in held_in_sessions

    picked = browser.post("/accounts/sumup/merchant/", {"merchant_code": "MBBB2222"}, follow=True)
    assert "SumUp connected: merchant account MBBB2222." in picked.text
    profile = reload(artist)
    assert (profile.sumup_merchant_code, profile.sumup_business_name) == (
        "MBBB2222",
        "Studio Sales",
    )
    # While the artist chose, the token waited in the session encrypted, never in clear.
    assert profile.sumup_access_token not in held_in_sessions


@pytest.mark.django_db
def test_a_merchant_linked_to_another_artist_is_refused(client, make_artist, sumup):
    first, second = make_artist(), make_artist()
    client.force_login(first.user)
    connect(client, sumup)
    client.force_login(second.user)
    response = connect(client, sumup)
    assert "already connected to another artist" in response.text
    assert not reload(second).is_sumup_connected
    assert reload(first).sumup_merchant_code == MERCHANT


@pytest.mark.django_db
def test_a_same_site_next_is_followed_and_an_off_site_one_never(browser, artist, sumup):
    followed = browser.get(
        callback_path(sumup.approve(start(browser, next="/accounts/dashboard/?tab=pay")))
    )
    assert followed["Location"] == "/accounts/dashboard/?tab=pay"
    browser.post("/accounts/sumup/disconnect/")

    kept_home = browser.get(
        callback_path(sumup.approve(start(browser, next="https://evil.example/")))
    )
    assert kept_home["Location"] == "/accounts/dashboard/"


@pytest.mark.django_db
def test_callbacks_from_anonymous_visitors_go_to_login_without_an_exchange(client, sumup):
    response = client.get("/accounts/sumup/callback/?code=abc&state=xyz")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert sumup.state.token_calls() == 0


@pytest.mark.django_db
def test_a_non_artist_callback_is_refused_without_an_exchange(client, django_user_model, sumup):
    client.force_login(django_user_model.objects.create_user("fan", "f@example.com", "pw-fan-1"))
    response = client.get("/accounts/sumup/callback/?code=abc&state=xyz")
    assert response.status_code == 403
    assert sumup.state.token_calls() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?state=",
        "?code=&state=&error=",
        "?state=%00%ff",
        "?state=a&state=b&code=c",
        "?" + "x" * 5000,
    ],
)
def test_malformed_callbacks_never_produce_a_server_error(browser, sumup, query):
    response = browser.get(f"/accounts/sumup/callback/{query}")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/dashboard/"
    assert sumup.state.token_calls() == 0


@pytest.mark.django_db
def test_disconnect_clears_the_connection_and_tells_the_artist_how_to_revoke(
    browser, artist, sumup, mailoutbox, django_capture_on_commit_callbacks
):
    connect(browser, sumup)
    # A GET only asks; the page's POST disconnects.
    assert browser.get("/accounts/sumup/disconnect/").status_code == 200
    assert reload(artist).is_sumup_connected
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/accounts/sumup/disconnect/", follow=True)
    assert "SumUp disconnected" in response.text
    assert 'id="sumup-status">Not connected<' in response.text
    profile = reload(artist)
    assert profile.sumup_access_token is None and profile.sumup_merchant_code is None
    assert "remove Jersey Events from the apps" in mailoutbox[-1].body


@pytest.mark.django_db
def test_no_token_reaches_the_log(browser, artist, sumup, caplog):
    caplog.set_level(logging.DEBUG)
    connect(browser, sumup)
    profile = reload(artist)
    for secret in (profile.sumup_access_token, profile.sumup_refresh_token):
        assert secret and secret not in caplog.text
