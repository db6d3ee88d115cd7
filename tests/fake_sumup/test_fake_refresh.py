"""POST /token with grant_type=refresh_token: rotation modes, expiry, revocation, counters."""

from typing import Any

from fakes.sumup import token_hash

DAY = 86_400


def _refresh_ok(client: Any, refresh_token: str) -> dict[str, Any]:
    response = client.refresh(refresh_token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_sumup_rotation_returns_the_same_refresh_token_outside_the_last_30_days(fake, client):
    tokens = client.connect()
    body = _refresh_ok(client, tokens["refresh_token"])
    assert body["refresh_token"] == tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert body["expires_in"] == 3599 and body["token_type"] == "Bearer"
    assert body["scope"] == tokens["scope"]
    fake.advance(149 * DAY)
    assert _refresh_ok(client, tokens["refresh_token"])["refresh_token"] == tokens["refresh_token"]


def test_sumup_rotation_issues_a_new_token_in_the_last_30_days_and_keeps_the_old_one(fake, client):
    old = client.connect()["refresh_token"]
    fake.advance(151 * DAY)
    new = _refresh_ok(client, old)["refresh_token"]
    assert new != old
    # The old token stays valid until its own expiry (SumUp's grace period).
    _refresh_ok(client, old)
    fake.advance(30 * DAY)  # day 181: the old one is dead, the new one lives to day 331
    assert client.refresh(old).json()["error"] == "invalid_grant"
    assert _refresh_ok(client, new)["refresh_token"] == new
    assert fake.stats()["refresh_tokens_rotated"] == 2


def test_refresh_tokens_expire_after_180_days(fake, client):
    tokens = client.connect()
    fake.advance(180 * DAY + 1)
    response = client.refresh(tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_always_rotation_issues_a_new_token_every_time(fake, client):
    fake.configure(rotation="always")
    first = client.connect()["refresh_token"]
    second = _refresh_ok(client, first)["refresh_token"]
    third = _refresh_ok(client, second)["refresh_token"]
    assert len({first, second, third}) == 3
    # Without reject_reuse the rotated-out token still works.
    assert _refresh_ok(client, first)["refresh_token"] not in {first, second, third}


def test_reject_reuse_refuses_a_rotated_out_token(fake, client):
    fake.configure(rotation="always", reject_reuse=True)
    first = client.connect()["refresh_token"]
    second = _refresh_ok(client, first)["refresh_token"]
    response = client.refresh(first)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert _refresh_ok(client, second)["refresh_token"] != second


def test_never_rotation_sends_no_refresh_token(fake, client):
    fake.configure(rotation="never")
    tokens = client.connect()
    assert "refresh_token" in tokens
    body = _refresh_ok(client, tokens["refresh_token"])
    assert "refresh_token" not in body
    assert "refresh_token" not in _refresh_ok(client, tokens["refresh_token"])


def test_a_revoked_grant_answers_invalid_grant_and_401(fake, client):
    tokens = client.connect()
    other = client.connect()
    assert client.control("revoke", {"email": "artist@example.com"}) == {"revoked": 2}
    for bundle in (tokens, other):
        response = client.refresh(bundle["refresh_token"])
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
        api = client.get("/v0.1/me", bundle["access_token"])
        assert api.status_code == 401
        assert api.json() == {
            "error_message": "invalid access token",
            "error_code": "NOT_AUTHORIZED",
        }
    # Connecting again makes a fresh grant.
    assert _refresh_ok(client, client.connect()["refresh_token"])


def test_it_rejects_an_unknown_refresh_token_and_a_wider_scope(fake, client):
    assert client.refresh("nope").json()["error"] == "invalid_grant"
    tokens = client.connect()
    wider = client.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "payments",
        }
    )
    assert wider.json()["error"] == "invalid_scope"
    narrower = client.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "user.profile_readonly",
        }
    )
    assert narrower.json()["scope"] == "user.profile_readonly"


def test_it_counts_token_calls_per_refresh_token_and_per_user(fake, client):
    fake.add_user("b@example.com", [{"code": "MBBBBBB1", "name": "B Ltd"}])
    a = client.connect()
    b = client.connect(user="b@example.com")
    _refresh_ok(client, a["refresh_token"])
    _refresh_ok(client, a["refresh_token"])
    _refresh_ok(client, b["refresh_token"])
    fake.add_fault("token", 503)
    assert client.refresh(b["refresh_token"]).status_code == 503

    state = fake.state
    assert state.refresh_calls(a["refresh_token"]) == 2
    assert state.refresh_calls(b["refresh_token"]) == 2
    assert state.token_calls("artist@example.com", "refresh_token") == 2
    assert state.token_calls("b@example.com") == 3
    assert state.token_calls(grant_type="authorization_code") == 2

    stats = client.control("stats")
    assert stats["token_calls"] == {
        "total": 6,
        "authorization_code": 2,
        "refresh_token": 4,
    }
    assert stats["refresh_calls_by_token"][token_hash(a["refresh_token"])] == 2
    assert stats["token_calls_by_user"]["b@example.com"] == {
        "total": 3,
        "authorization_code": 1,
        "refresh_token": 2,
    }
    per_grant = [g for g in stats["token_calls_by_grant"].values() if g["user"] == "b@example.com"]
    assert per_grant == [{"user": "b@example.com", "authorization_code": 1, "refresh_token": 2}]
    assert stats["responses"]["token"] == {"200": 5, "503": 1}
    assert stats["codes_issued"] == 2 and stats["codes_exchanged"] == 2
    assert stats["faults_served"] == {"token": 1}


def test_minted_grants_can_start_inside_the_rotation_window(fake, client):
    tokens = client.control(
        "grants", {"email": "artist@example.com", "refresh_age_seconds": 160 * DAY}
    )
    assert client.get("/v0.1/memberships", tokens["access_token"]).status_code == 200
    assert _refresh_ok(client, tokens["refresh_token"])["refresh_token"] != tokens["refresh_token"]
