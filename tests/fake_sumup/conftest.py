"""One fake SumUp for the whole run (reset before each test) and a small OAuth client."""

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from fakes.sumup import FakeSumUp

REDIRECT = "http://127.0.0.1:8000/accounts/sumup/callback/"
OTHER_REDIRECT = "http://localhost:8000/accounts/sumup/callback/"
CLIENT_ID = "jersey-events-local"
CLIENT_SECRET = "local-secret"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OAuthClient:
    """Plays the Django app's part against the fake, over real HTTP."""

    def __init__(self, fake: FakeSumUp) -> None:
        self.fake = fake
        self.http = requests.Session()
        self.verifier, self.challenge = pkce_pair()

    def authorize_params(self, **overrides: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "scope": "user.profile_readonly transactions.history",
            "state": "st-123",
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            **overrides,
        }
        return {name: value for name, value in params.items() if value is not None}

    def consent(
        self, decision: str = "allow", user: str | None = None, **overrides: str | None
    ) -> requests.Response:
        """POST the consent form as the browser would; no redirect following."""
        form = {**self.authorize_params(**overrides), "decision": decision}
        if user:
            form["user"] = user
        return self.http.post(self.fake.authorize_url, data=form, allow_redirects=False)

    def callback(self, **kwargs: Any) -> dict[str, str]:
        response = self.consent(**kwargs)
        assert response.status_code == 302, response.text
        location = response.headers["Location"]
        assert location.startswith(kwargs.get("redirect_uri") or REDIRECT)
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def token(self, data: dict[str, str], auth: str = "body", **kwargs: Any) -> requests.Response:
        if auth == "body":
            data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **data}
            return self.http.post(self.fake.token_url, data=data, **kwargs)
        return self.http.post(
            self.fake.token_url, data=data, auth=(CLIENT_ID, CLIENT_SECRET), **kwargs
        )

    def exchange(self, code: str, auth: str = "body", **overrides: str) -> requests.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": self.verifier,
            **overrides,
        }
        return self.token(data, auth)

    def connect(self, user: str | None = None) -> dict[str, Any]:
        """Consent + code exchange: the token response body."""
        code = self.callback(user=user)["code"]
        response = self.exchange(code)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def refresh(self, refresh_token: str, auth: str = "body", **kwargs: Any) -> requests.Response:
        return self.token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, auth, **kwargs
        )

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(self.fake.base_url + path, headers=headers, **kwargs)

    def control(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        url = f"{self.fake.base_url}/_fake/{path}"
        response = self.http.post(url, json=payload) if payload is not None else self.http.get(url)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeSumUp]:
    with FakeSumUp(redirect_uris=[REDIRECT, OTHER_REDIRECT]) as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeSumUp) -> Iterator[FakeSumUp]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()


@pytest.fixture
def client(fake: FakeSumUp) -> Iterator[OAuthClient]:
    oauth = OAuthClient(fake)
    yield oauth
    oauth.http.close()
