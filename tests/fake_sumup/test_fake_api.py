"""The REST endpoints: memberships, /me, /v1/merchants/{code}, 401/403/404s, trailing slash."""

import pytest

from fakes.sumup import DEFAULT_MERCHANT_CODE, DEFAULT_MERCHANT_NAME

INVALID = {"error_message": "invalid access token", "error_code": "NOT_AUTHORIZED"}


@pytest.fixture
def token(fake, client):
    fake.add_user(
        "artist@example.com",
        [
            {"code": DEFAULT_MERCHANT_CODE, "name": DEFAULT_MERCHANT_NAME},
            {"code": "MPEND001", "name": "Pending Pop-up", "status": "pending"},
            {
                "code": "MOLD0001",
                "name": "Old Shop",
                "status": "expired",
                "roles": ["role_employee"],
            },
        ],
    )
    return client.connect()["access_token"]


def test_memberships_lists_the_users_merchants(fake, client, token):
    response = client.get("/v0.1/memberships", token)
    assert response.status_code == 200
    body = response.json()
    assert body["total_count"] == 3
    first = body["items"][0]
    assert first["resource_id"] == DEFAULT_MERCHANT_CODE
    assert first["type"] == "merchant"
    assert first["status"] == "accepted"
    assert first["roles"] == ["role_owner"]
    assert first["id"].startswith("mem_")
    assert {"created_at", "updated_at", "permissions"} <= set(first)
    resource = first["resource"]
    assert resource["id"] == DEFAULT_MERCHANT_CODE
    assert resource["type"] == "merchant"
    assert resource["name"] == DEFAULT_MERCHANT_NAME


@pytest.mark.parametrize(
    ("query", "codes", "total"),
    [
        ({"status": "accepted"}, [DEFAULT_MERCHANT_CODE], 1),
        ({"status": "pending"}, ["MPEND001"], 1),
        ({"resource.type": "merchant", "status": "expired"}, ["MOLD0001"], 1),
        ({"kind": "merchant"}, [DEFAULT_MERCHANT_CODE, "MPEND001", "MOLD0001"], 3),
        ({"kind": "organization"}, [], 0),
        ({"limit": "1", "offset": "1"}, ["MPEND001"], 3),
        ({"resource.name": "pop-up"}, ["MPEND001"], 1),
    ],
)
def test_memberships_honours_filters(fake, client, token, query, codes, total):
    body = client.get("/v0.1/memberships", token, params=query).json()
    assert [item["resource_id"] for item in body["items"]] == codes
    assert body["total_count"] == total


@pytest.mark.parametrize("query", [{"status": "gone"}, {"limit": "26"}, {"limit": "x"}])
def test_memberships_rejects_bad_filters(fake, client, token, query):
    assert client.get("/v0.1/memberships", token, params=query).status_code == 400


def test_memberships_can_answer_404(fake, client, token):
    client.control("config", {"memberships_404": True})
    assert client.get("/v0.1/memberships", token).status_code == 404
    assert client.get("/v0.1/me", token).status_code == 200


def test_me_has_the_legacy_shape(fake, client, token):
    body = client.get("/v0.1/me", token).json()
    assert body["merchant_profile"]["merchant_code"] == DEFAULT_MERCHANT_CODE
    assert body["account"]["username"] == "artist@example.com"
    profile = client.get("/v0.1/me/merchant-profile", token).json()
    assert profile["merchant_code"] == DEFAULT_MERCHANT_CODE
    fake.configure(me_404=True)
    assert client.get("/v0.1/me", token).status_code == 404


def test_merchant_has_the_v1_shape(fake, client, token):
    response = client.get(f"/v1/merchants/{DEFAULT_MERCHANT_CODE}", token)
    assert response.status_code == 200
    body = response.json()
    assert body["merchant_code"] == DEFAULT_MERCHANT_CODE
    assert body["country"] == "GB"
    assert body["default_currency"] == "GBP"
    assert body["default_locale"] == "en-GB"
    assert body["business_profile"]["name"] == DEFAULT_MERCHANT_NAME
    assert body["company"]["name"] == DEFAULT_MERCHANT_NAME


def test_merchant_answers_404_for_unknown_and_403_for_non_members(fake, client, token):
    fake.add_user("other@example.com", [{"code": "MOTHER01", "name": "Other"}])
    assert client.get("/v1/merchants/MNOPE000", token).status_code == 404
    assert client.get("/v1/merchants/MOTHER01", token).status_code == 403


@pytest.mark.parametrize(
    "path", ["/v0.1/memberships", "/v0.1/me", f"/v1/merchants/{DEFAULT_MERCHANT_CODE}"]
)
def test_api_answers_401_without_a_valid_token(fake, client, token, path):
    missing = client.get(path)
    assert missing.status_code == 401
    assert missing.json() == {"message": "access token required", "error_code": "NOT_AUTHORIZED"}
    wrong = client.get(path, "not-a-token")
    assert (wrong.status_code, wrong.json()) == (401, INVALID)
    fake.advance(3600)
    expired = client.get(path, token)
    assert (expired.status_code, expired.json()) == (401, INVALID)


def test_api_answers_403_without_a_profile_scope(fake, client):
    code = client.callback(scope="transactions.history")["code"]
    token = client.exchange(code).json()["access_token"]
    response = client.get("/v0.1/memberships", token)
    assert response.status_code == 403
    assert response.json()["error_code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    "path",
    ["/v0.1/memberships/", "/v0.1/me/", f"/v1/merchants/{DEFAULT_MERCHANT_CODE}/", "/token/"],
)
def test_it_refuses_trailing_slashes(fake, client, token, path):
    response = client.get(path, token)
    assert response.status_code == 404
    assert "trailing slash" in response.json()["detail"]
    assert client.http.post(fake.base_url + "/token/", data={}).status_code == 404
    assert client.http.get(fake.base_url + "/authorize/").status_code == 404


def test_there_is_no_revocation_endpoint(fake, client, token):
    assert client.http.post(fake.base_url + "/revoke", data={"token": token}).status_code == 404
