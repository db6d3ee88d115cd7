"""Plain data records held by the fake: clients, users, merchants, grants, codes, tokens,
configuration, faults and the controllable clock."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Rotation = Literal["sumup", "always", "never"]
ROTATIONS: tuple[Rotation, ...] = ("sumup", "always", "never")

#: Endpoint names used by faults, latency and stats.
ENDPOINTS: tuple[str, ...] = ("authorize", "token", "memberships", "me", "merchants")

DAY = 86_400
DEFAULT_CLIENT_ID = "jersey-events-local"
DEFAULT_CLIENT_SECRET = "local-secret"  # noqa: S105 - a public development value
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/accounts/sumup/callback/"
DEFAULT_USER_EMAIL = "artist@example.com"
DEFAULT_MERCHANT_CODE = "MH4H92C7"
DEFAULT_MERCHANT_NAME = "Harbour Lights Ltd"

#: SumUp grants these when the authorize request names no scope.
DEFAULT_SCOPES: tuple[str, ...] = (
    "transactions.history",
    "user.app-settings",
    "user.profile_readonly",
)
#: Either one lets a token read memberships, /me and merchants.
PROFILE_SCOPES = frozenset({"user.profile", "user.profile_readonly"})

MEMBERSHIP_STATUSES = ("accepted", "pending", "expired", "disabled", "unknown")


def token_hash(value: str) -> str:
    """The short, stable id under which stats report a token (never the token itself)."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def iso(timestamp: float) -> str:
    """RFC 3339 UTC timestamp, the format SumUp uses for created_at/updated_at."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """Wall-clock time plus an offset that tests move forward (or back) at will."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> float:
        """Move the fake's time forward by `seconds`; returns the new offset."""
        with self._lock:
            self._offset += seconds
            return self._offset

    def set_offset(self, seconds: float) -> None:
        with self._lock:
            self._offset = seconds


@dataclass
class Client:
    """A registered OAuth app (SumUp dashboard → OAuth Apps)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]


@dataclass
class Merchant:
    """A SumUp merchant account, as `/v1/merchants/{code}` returns it."""

    code: str
    name: str
    country: str = "GB"
    currency: str = "GBP"
    locale: str = "en-GB"
    created_at: float = field(default_factory=time.time)


@dataclass
class Membership:
    """A user's membership in a merchant account."""

    merchant_code: str
    status: str = "accepted"
    roles: list[str] = field(default_factory=lambda: ["role_owner"])


@dataclass
class User:
    """A SumUp login. The first accepted membership is the user's default merchant."""

    email: str
    memberships: list[Membership] = field(default_factory=list)
    first_name: str = "Fake"
    last_name: str = "Artist"

    def default_merchant_code(self) -> str | None:
        for membership in self.memberships:
            if membership.status == "accepted":
                return membership.merchant_code
        return None

    def membership(self, merchant_code: str) -> Membership | None:
        for membership in self.memberships:
            if membership.merchant_code == merchant_code:
                return membership
        return None


@dataclass
class Grant:
    """One consent: created by a successful code exchange (or `mint_grant`)."""

    id: str
    client_id: str
    user_email: str | None
    scope: str
    created_at: float
    code: str | None = None
    revoked: bool = False
    revoked_reason: str = ""
    token_calls: dict[str, int] = field(default_factory=dict)


@dataclass
class AuthCode:
    """An authorization code: short lived and single use."""

    code: str
    client_id: str
    redirect_uri: str
    user_email: str
    scope: str
    issued_at: float
    expires_at: float
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    used: bool = False
    grant_id: str | None = None


@dataclass
class AccessToken:
    token: str
    grant_id: str
    issued_at: float
    expires_at: float


@dataclass
class RefreshToken:
    token: str
    grant_id: str
    issued_at: float
    expires_at: float
    replaced_by: str | None = None
    uses: int = 0


@dataclass
class Config:
    """Behaviour switches; all can be changed at runtime (`POST /_fake/config`).

    rotation: "sumup" (new refresh token only inside the last 30 days of the used one's
    life, otherwise the same value comes back; the old one stays valid), "always" (a new one
    on every refresh) or "never" (no `refresh_token` in refresh responses).
    reject_reuse: a rotated-out refresh token answers invalid_grant.
    """

    rotation: Rotation = "sumup"
    reject_reuse: bool = False
    expires_in: int = 3599
    refresh_lifetime: int = 180 * DAY
    rotation_window: int = 30 * DAY
    code_lifetime: int = 60
    latency_ms: int = 0
    endpoint_latency_ms: dict[str, int] = field(default_factory=dict)
    invalid_client: bool = False
    memberships_404: bool = False
    me_404: bool = False
    require_pkce: bool = False
    enforce_scopes: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "rotation": self.rotation,
            "reject_reuse": self.reject_reuse,
            "expires_in": self.expires_in,
            "refresh_lifetime": self.refresh_lifetime,
            "rotation_window": self.rotation_window,
            "code_lifetime": self.code_lifetime,
            "latency_ms": self.latency_ms,
            "endpoint_latency_ms": dict(self.endpoint_latency_ms),
            "invalid_client": self.invalid_client,
            "memberships_404": self.memberships_404,
            "me_404": self.me_404,
            "require_pkce": self.require_pkce,
            "enforce_scopes": self.enforce_scopes,
        }

    def copy(self) -> Config:
        return Config(**{**self.as_dict(), "endpoint_latency_ms": dict(self.endpoint_latency_ms)})


@dataclass
class Fault:
    """A forced response for the next `count` requests to one endpoint.

    status None means "pass through": wait `delay_seconds`, then answer normally.
    drop closes the connection without any answer. body: a dict (sent as JSON), a str
    (sent as text/plain) or None (a default body for the status).
    """

    status: int | None = 503
    count: int = 1
    retry_after: str | None = None
    delay_seconds: float = 0.0
    body: dict[str, Any] | list[Any] | str | None = None
    drop: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "count": self.count,
            "retry_after": self.retry_after,
            "delay_seconds": self.delay_seconds,
            "body": self.body,
            "drop": self.drop,
        }


class OAuthError(Exception):
    """An RFC 6749 error answer from the token endpoint."""

    def __init__(self, error: str, description: str = "", status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body
