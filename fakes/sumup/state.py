"""The fake's in-memory, thread-safe store: clients, users, merchants, grants, codes,
tokens, configuration, queued faults and counters."""

from __future__ import annotations

import copy
import secrets
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

from fakes.sumup.models import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_MERCHANT_CODE,
    DEFAULT_MERCHANT_NAME,
    DEFAULT_REDIRECT_URI,
    DEFAULT_SCOPES,
    DEFAULT_USER_EMAIL,
    ENDPOINTS,
    MEMBERSHIP_STATUSES,
    ROTATIONS,
    AccessToken,
    AuthCode,
    Client,
    Clock,
    Config,
    Fault,
    Grant,
    Membership,
    Merchant,
    RefreshToken,
    User,
    token_hash,
)
from fakes.sumup.stats import Stats, snapshot

_BOOL_FIELDS = frozenset(
    {
        "reject_reuse",
        "invalid_client",
        "memberships_404",
        "me_404",
        "require_pkce",
        "enforce_scopes",
    }
)
_INT_FIELDS = frozenset(
    {"expires_in", "refresh_lifetime", "rotation_window", "code_lifetime", "latency_ms"}
)


def _seed_code(n: int) -> str:
    return f"MFK{n:05d}"


class FakeState:
    """In-memory, thread-safe state of the fake SumUp.

    Everything is guarded by `lock` (re-entrant); the public methods take it themselves.
    `reset()` restores what the constructor set up (clients, users, merchants, config) and
    forgets every code, token, grant, fault and counter, and the clock offset.

    The default user `artist@example.com` is a member of merchant `MH4H92C7`
    ("Harbour Lights Ltd"); `seed_users=N` adds `artist1@example.com` … `artistN@example.com`,
    each owning merchant `MFK00001` … (named "Fake Merchant N").
    """

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        redirect_uris: Iterable[str] = (DEFAULT_REDIRECT_URI,),
        config: Config | None = None,
        seed_users: int = 0,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.clients: dict[str, Client] = {}
        self.users: dict[str, User] = {}
        self.merchants: dict[str, Merchant] = {}
        self.config = config.copy() if config else Config()
        self.add_client(client_id, client_secret, list(redirect_uris))
        self.add_user(
            DEFAULT_USER_EMAIL, [{"code": DEFAULT_MERCHANT_CODE, "name": DEFAULT_MERCHANT_NAME}]
        )
        for n in range(1, seed_users + 1):
            self.add_user(
                f"artist{n}@example.com", [{"code": _seed_code(n), "name": f"Fake Merchant {n}"}]
            )
        self._initial = copy.deepcopy((self.clients, self.users, self.merchants, self.config))
        self._clear_runtime()

    # -- lifecycle -------------------------------------------------------------------
    def _clear_runtime(self) -> None:
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.faults: dict[str, deque[Fault]] = {name: deque() for name in ENDPOINTS}
        self.counters = Stats()

    def reset(self) -> None:
        """Back to the state right after construction."""
        with self.lock:
            (self.clients, self.users, self.merchants, self.config) = copy.deepcopy(self._initial)
            self._clear_runtime()
            self.clock.set_offset(0)

    def now(self) -> float:
        return self.clock.now()

    # -- clients, users, merchants -----------------------------------------------------
    def add_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> Client:
        """Register (or replace) an OAuth app."""
        with self.lock:
            client = Client(client_id, client_secret, list(redirect_uris))
            self.clients[client_id] = client
            return client

    def get_client(self, client_id: str) -> Client | None:
        with self.lock:
            return self.clients.get(client_id)

    def add_merchant(
        self,
        code: str,
        name: str,
        *,
        country: str = "GB",
        currency: str = "GBP",
        locale: str = "en-GB",
    ) -> Merchant:
        """Create or update a merchant account."""
        with self.lock:
            merchant = self.merchants.get(code)
            if merchant is None:
                merchant = Merchant(code, name, country, currency, locale, created_at=self.now())
                self.merchants[code] = merchant
            else:
                merchant.name, merchant.country = name, country
                merchant.currency, merchant.locale = currency, locale
            return merchant

    def add_user(self, email: str, merchants: Iterable[Mapping[str, Any]] = ()) -> User:
        """Create a user, or replace an existing user's memberships.

        Each merchant mapping: `code` (required), `name`, `status` (accepted|pending|
        expired|disabled|unknown, default accepted), `roles`, `country`, `currency`,
        `locale`. Unknown merchant codes are created.
        """
        memberships = []
        with self.lock:
            for spec in merchants:
                code = str(spec["code"])
                status = str(spec.get("status", "accepted"))
                if status not in MEMBERSHIP_STATUSES:
                    raise ValueError(f"unknown membership status {status!r}")
                existing = self.merchants.get(code)
                self.add_merchant(
                    code,
                    str(spec.get("name") or (existing.name if existing else f"Merchant {code}")),
                    country=str(spec.get("country", existing.country if existing else "GB")),
                    currency=str(spec.get("currency", existing.currency if existing else "GBP")),
                    locale=str(spec.get("locale", existing.locale if existing else "en-GB")),
                )
                roles = [str(role) for role in spec.get("roles", ["role_owner"])]
                memberships.append(Membership(code, status, roles))
            user = self.users.get(email)
            if user is None:
                user = User(email, memberships)
                self.users[email] = user
            else:
                user.memberships = memberships
            return user

    def get_user(self, email: str) -> User | None:
        with self.lock:
            return self.users.get(email)

    def user_emails(self) -> list[str]:
        with self.lock:
            return list(self.users)

    # -- configuration and faults -----------------------------------------------------
    def configure(self, **changes: Any) -> Config:
        """Change configuration fields (see `Config`); unknown names raise ValueError."""
        with self.lock:
            new = self.config.copy()
            for name, value in changes.items():
                if name == "rotation":
                    if value not in ROTATIONS:
                        raise ValueError(f"rotation must be one of {ROTATIONS}")
                    new.rotation = value
                elif name == "endpoint_latency_ms":
                    if not isinstance(value, dict) or not set(value) <= set(ENDPOINTS):
                        raise ValueError(f"endpoint_latency_ms: a map of {ENDPOINTS} to ms")
                    new.endpoint_latency_ms = {str(k): int(v) for k, v in value.items()}
                elif name in _BOOL_FIELDS:
                    if not isinstance(value, bool):
                        raise ValueError(f"{name} must be true or false")
                    setattr(new, name, value)
                elif name in _INT_FIELDS:
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise ValueError(f"{name} must be a non-negative integer")
                    setattr(new, name, value)
                else:
                    raise ValueError(f"unknown config field {name!r}")
            self.config = new
            return new.copy()

    def add_fault(self, endpoint: str, fault: Fault) -> None:
        """Queue a forced response for the next `fault.count` requests to `endpoint`."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}")
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        with self.lock:
            self.faults[endpoint].append(fault)

    def clear_faults(self, endpoint: str | None = None) -> None:
        with self.lock:
            for name, queue in self.faults.items():
                if endpoint is None or name == endpoint:
                    queue.clear()

    def take_fault(self, endpoint: str) -> Fault | None:
        """Consume one use of the first queued fault for `endpoint`, if any."""
        with self.lock:
            queue = self.faults.get(endpoint)
            if not queue:
                return None
            fault = queue[0]
            fault.count -= 1
            if fault.count <= 0:
                queue.popleft()
            self.counters.faults_served[endpoint] += 1
            return fault

    def pending_faults(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            return {name: [f.as_dict() for f in queue] for name, queue in self.faults.items()}

    # -- grants and tokens ---------------------------------------------------------------
    def new_grant(self, client_id: str, user_email: str | None, scope: str) -> Grant:
        with self.lock:
            grant = Grant(f"grant_{secrets.token_hex(8)}", client_id, user_email, scope, self.now())
            self.grants[grant.id] = grant
            return grant

    def issue_access_token(self, grant: Grant) -> AccessToken:
        with self.lock:
            now = self.now()
            token = AccessToken(
                secrets.token_urlsafe(32), grant.id, now, now + self.config.expires_in
            )
            self.access_tokens[token.token] = token
            self.counters.events["access_tokens_issued"] += 1
            return token

    def issue_refresh_token(self, grant: Grant, *, age_seconds: float = 0) -> RefreshToken:
        with self.lock:
            issued = self.now() - age_seconds
            token = RefreshToken(
                secrets.token_urlsafe(32), grant.id, issued, issued + self.config.refresh_lifetime
            )
            self.refresh_tokens[token.token] = token
            self.counters.events["refresh_tokens_issued"] += 1
            return token

    def mint_grant(
        self,
        email: str = DEFAULT_USER_EMAIL,
        *,
        client_id: str | None = None,
        scope: str | None = None,
        refresh_age_seconds: float = 0,
    ) -> dict[str, Any]:
        """Create a consent without the browser flow; returns a token response body.

        refresh_age_seconds back-dates the refresh token (e.g. 160 days old, so the next
        refresh falls inside SumUp's 30-day re-issue window).
        """
        with self.lock:
            if email not in self.users:
                raise ValueError(f"unknown user {email!r}")
            client = client_id or next(iter(self.clients))
            grant = self.new_grant(client, email, scope or " ".join(DEFAULT_SCOPES))
            access = self.issue_access_token(grant)
            refresh = self.issue_refresh_token(grant, age_seconds=refresh_age_seconds)
            return {
                "access_token": access.token,
                "token_type": "Bearer",
                "expires_in": self.config.expires_in,
                "refresh_token": refresh.token,
                "scope": grant.scope,
            }

    def revoke_grant(self, grant_id: str, reason: str = "revoked") -> bool:
        with self.lock:
            grant = self.grants.get(grant_id)
            if grant is None or grant.revoked:
                return False
            grant.revoked, grant.revoked_reason = True, reason
            self.counters.events["grants_revoked"] += 1
            return True

    def revoke_user(self, email: str) -> int:
        """The user removes the app in SumUp: every grant of theirs dies. Returns how many."""
        with self.lock:
            ids = [g.id for g in self.grants.values() if g.user_email == email and not g.revoked]
            return sum(self.revoke_grant(grant_id, "revoked by user") for grant_id in ids)

    def revoke_token(self, token: str) -> bool:
        """Revoke the grant that an access or refresh token belongs to."""
        with self.lock:
            record = self.refresh_tokens.get(token) or self.access_tokens.get(token)
            return record is not None and self.revoke_grant(record.grant_id, "revoked")

    def grant_for_token(self, token: str) -> Grant | None:
        with self.lock:
            record = self.refresh_tokens.get(token) or self.access_tokens.get(token)
            return self.grants.get(record.grant_id) if record else None

    # -- stats ---------------------------------------------------------------------------
    def record_request(self, endpoint: str) -> None:
        with self.lock:
            self.counters.requests[endpoint] += 1
            self.counters.in_flight[endpoint] += 1
            if self.counters.in_flight[endpoint] > self.counters.max_in_flight[endpoint]:
                self.counters.max_in_flight[endpoint] = self.counters.in_flight[endpoint]

    def record_response(self, endpoint: str, status: int) -> None:
        with self.lock:
            self.counters.in_flight[endpoint] -= 1
            self.counters.responses.setdefault(endpoint, Counter())[status] += 1

    def record_event(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters.events[name] += n

    def refresh_calls(self, refresh_token: str) -> int:
        """How many token calls presented this refresh token (whatever their outcome)."""
        with self.lock:
            return self.counters.refresh_calls_by_token[token_hash(refresh_token)]

    def token_calls(self, email: str | None = None, grant_type: str | None = None) -> int:
        """Token calls, all or one user's, of every grant type or one."""
        with self.lock:
            counter = (
                self.counters.token_calls
                if email is None
                else self.counters.token_calls_by_user.get(email, Counter())
            )
            if grant_type is None:
                return sum(counter.values())
            return counter[grant_type]

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot of every counter (what `GET /_fake/stats` answers)."""
        with self.lock:
            return snapshot(self)
