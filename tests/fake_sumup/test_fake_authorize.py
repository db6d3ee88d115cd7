"""GET/POST /authorize: validation, the consent page, allow and deny."""

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from fakes.sumup import DEFAULT_MERCHANT_CODE, DEFAULT_REDIRECT_URI, FakeSumUp

REDIRECT = DEFAULT_REDIRECT_URI
OTHER_REDIRECT = "http://localhost:8000/accounts/sumup/callback/"  # also registered (conftest)


def _get(fake: FakeSumUp, client: Any, **overrides: str | None) -> requests.Response:
    query = urlencode(client.authorize_params(**overrides))
    return requests.get(f"{fake.authorize_url}?{query}", allow_redirects=False, timeout=5)


def _redirect_query(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def test_it_shows_the_consent_page(fake, client):
    fake.add_user("second@example.com", [{"code": "MSECOND1", "name": "Second Ltd"}])
    response = _get(fake, client)
    assert response.status_code == 200
    page = response.text
    assert "id=client-id>jersey-events-local<" in page
    assert "<code>user.profile_readonly</code>" in page
    assert "<code>transactions.history</code>" in page
    assert "id=allow name=decision value=allow" in page
    assert "id=deny name=decision value=deny" in page
    assert '<option value="artist@example.com" selected>' in page
    assert '<option value="second@example.com">' in page
    assert f'name="code_challenge" value="{client.challenge}"' in page
    assert 'name="state" value="st-123"' in page


def test_it_lists_the_default_scopes_when_none_are_requested(fake, client):
    page = _get(fake, client, scope=None).text
    for scope in ("transactions.history", "user.app-settings", "user.profile_readonly"):
        assert f"<code>{scope}</code>" in page


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "someone-else"},
        {"client_id": None},
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": REDIRECT.rstrip("/")},
        {"redirect_uri": None},
    ],
)
def test_it_shows_an_error_page_instead_of_redirecting(fake, client, overrides):
    response = _get(fake, client, **overrides)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "Invalid request" in response.text
    assert client.consent(**overrides).status_code == 400


@pytest.mark.parametrize("response_type", [None, "token", "code id_token"])
def test_it_redirects_unsupported_response_type(fake, client, response_type):
    query = _redirect_query(_get(fake, client, response_type=response_type))
    assert query["error"] == "unsupported_response_type"
    assert query["state"] == "st-123"
    assert "code" not in query


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},
        {"code_challenge": None},
        {"code_challenge": "too-short"},
    ],
)
def test_it_rejects_a_bad_pkce_challenge(fake, client, overrides):
    query = _redirect_query(_get(fake, client, **overrides))
    assert query["error"] == "invalid_request"
    assert query["state"] == "st-123"


def test_it_requires_pkce_only_when_configured(fake, client):
    fake.configure(require_pkce=True)
    params = {"code_challenge": None, "code_challenge_method": None}
    assert _redirect_query(_get(fake, client, **params))["error"] == "invalid_request"
    fake.configure(require_pkce=False)
    assert _get(fake, client, **params).status_code == 200


def test_it_redirects_a_denial_with_access_denied(fake, client):
    query = client.callback(decision="deny")
    assert query["error"] == "access_denied"
    assert query["state"] == "st-123"
    assert "code" not in query
    assert fake.stats()["denials"] == 1


def test_it_redirects_an_approval_with_code_state_and_merchant_code(fake, client):
    query = client.callback()
    assert query["state"] == "st-123"
    assert query["merchant_code"] == DEFAULT_MERCHANT_CODE
    assert len(query["code"]) >= 20
    assert fake.stats()["codes_issued"] == 1


def test_it_uses_the_chosen_users_default_merchant(fake, client):
    fake.add_user(
        "two@example.com",
        [
            {"code": "MPENDING", "name": "Pending Co", "status": "pending"},
            {"code": "MTWO0002", "name": "Two Ltd"},
        ],
    )
    query = client.callback(user="two@example.com")
    assert query["merchant_code"] == "MTWO0002"


def test_it_keeps_the_redirect_uris_own_query_and_allows_any_registered_uri(fake, client):
    fake.state.add_client("other-app", "s3cret", [REDIRECT + "?tenant=7", OTHER_REDIRECT])
    location = client.consent(client_id="other-app", redirect_uri=REDIRECT + "?tenant=7")
    query = _redirect_query(location)
    assert query["tenant"] == "7" and "code" in query
    assert "code" in client.callback(client_id="other-app", redirect_uri=OTHER_REDIRECT)


def test_it_rejects_an_unknown_user_on_the_consent_form(fake, client):
    assert client.consent(user="nobody@example.com").status_code == 400


def test_approve_answers_the_consent_without_a_browser(fake, client):
    url = f"{fake.authorize_url}?{urlencode(client.authorize_params())}"
    callback = fake.approve(url)
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    assert callback.startswith(REDIRECT)
    assert query["merchant_code"] == DEFAULT_MERCHANT_CODE
    assert client.exchange(query["code"]).status_code == 200
    assert "error=access_denied" in fake.approve(url, allow=False)
    with pytest.raises(ValueError, match="client_id"):
        fake.approve(url.replace("jersey-events-local", "nope"))
