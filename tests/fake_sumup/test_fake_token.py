"""POST /token with grant_type=authorization_code, client authentication."""

import pytest
import requests

from fakes.sumup import DEFAULT_REDIRECT_URI


def test_it_exchanges_a_code_with_the_right_verifier(fake, client):
    code = client.callback()["code"]
    response = client.exchange(code)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert body["scope"] == "user.profile_readonly transactions.history"
    assert client.get("/v0.1/memberships", body["access_token"]).status_code == 200


def test_it_grants_the_default_scopes_when_none_were_requested(fake, client):
    code = client.callback(scope=None)["code"]
    scope = client.exchange(code).json()["scope"]
    assert scope == "transactions.history user.app-settings user.profile_readonly"


def test_it_rejects_a_wrong_verifier(fake, client):
    code = client.callback()["code"]
    response = client.exchange(code, code_verifier="x" * 50)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    missing = client.token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": DEFAULT_REDIRECT_URI}
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


def test_it_rejects_a_reused_code_and_revokes_what_it_issued(fake, client):
    code = client.callback()["code"]
    first = client.exchange(code).json()
    again = client.exchange(code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert client.get("/v0.1/memberships", first["access_token"]).status_code == 401
    refreshed = client.refresh(first["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert fake.stats()["grants_revoked"] == 1


def test_it_rejects_an_expired_code(fake, client):
    code = client.callback()["code"]
    fake.advance(61)
    response = client.exchange(code)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "code parameter invalid or expired",
    }


def test_it_rejects_an_unknown_or_missing_code(fake, client):
    assert client.exchange("not-a-code").json()["error"] == "invalid_grant"
    missing = client.exchange("")
    assert missing.json() == {
        "error": "invalid_request",
        "error_description": "code parameter is missing",
    }


def test_it_rejects_a_redirect_uri_mismatch(fake, client):
    code = client.callback()["code"]
    response = client.exchange(code, redirect_uri=DEFAULT_REDIRECT_URI.rstrip("/"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    # The code was not burned by the failed attempt.
    assert client.exchange(code).status_code == 200


def test_it_rejects_a_code_issued_to_another_client(fake, client):
    fake.state.add_client("other-app", "other-secret", [DEFAULT_REDIRECT_URI])
    code = client.callback(client_id="other-app")["code"]
    assert client.exchange(code).json()["error"] == "invalid_grant"


def test_it_accepts_http_basic_client_authentication(fake, client):
    code = client.callback()["code"]
    response = client.exchange(code, auth="basic")
    assert response.status_code == 200, response.text
    refreshed = client.refresh(response.json()["refresh_token"], auth="basic")
    assert refreshed.status_code == 200


@pytest.mark.parametrize(
    ("auth", "data"),
    [
        (None, {"client_id": "jersey-events-local", "client_secret": "wrong"}),
        (None, {"client_id": "unknown", "client_secret": "local-secret"}),
        (None, {"client_id": "jersey-events-local"}),
        (None, {}),
        (("jersey-events-local", "wrong"), {}),
        (("jersey-events-local", "local-secret"), {"client_id": "someone-else"}),
    ],
)
def test_it_rejects_bad_client_credentials(fake, client, auth, data):
    payload = {"grant_type": "refresh_token", "refresh_token": "x", **data}
    response = requests.post(fake.token_url, data=payload, auth=auth, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in response.headers


def test_it_answers_invalid_client_in_invalid_client_mode(fake, client):
    tokens = client.connect()
    fake.configure(invalid_client=True)
    response = client.refresh(tokens["refresh_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    fake.configure(invalid_client=False)
    assert client.refresh(tokens["refresh_token"]).status_code == 200


def test_it_rejects_bad_requests(fake, client):
    unsupported = client.token({"grant_type": "password", "username": "a", "password": "b"})
    assert unsupported.json()["error"] == "unsupported_grant_type"
    assert client.token({}).json()["error"] == "invalid_request"
    as_json = requests.post(
        fake.token_url,
        json={"grant_type": "client_credentials"},
        auth=("jersey-events-local", "local-secret"),
        timeout=5,
    )
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"
    assert requests.get(fake.token_url, timeout=5).status_code == 405


def test_client_credentials_tokens_cannot_read_merchant_data(fake, client):
    body = client.token({"grant_type": "client_credentials"}).json()
    assert "refresh_token" not in body
    response = client.get("/v0.1/memberships", body["access_token"])
    assert response.status_code == 403
    assert response.json()["error_code"] == "FORBIDDEN"
