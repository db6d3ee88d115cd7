"""The one module that talks to SumUp.

OAuth (authorize URL, code exchange, refresh) goes through Authlib over requests; API
calls through a requests session. Every call has a fixed timeout, builds URLs without a
trailing slash (SumUp rejects them), and fails with `SumUpError`, whose `permanent` flag
says whether retrying can help. Tokens never appear in an error message or a log line.

Each call gets a fresh session, so no token of one artist lingers in an object the
next call uses, but all sessions of a process share one pool of kept-alive connections:
a sweep's thousands of refreshes are not each a TCP and TLS handshake.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from django.conf import settings
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

MERCHANT_CODE = re.compile(r"[A-Za-z0-9]{1,50}")
TIMEOUT = (3.05, 10)  # seconds: (connect, read)
PERMANENT_OAUTH_ERRORS = {
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "invalid_request",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
}


POOL_SIZE = 64  # kept-alive connections per process (threads beyond it open their own)
_pool_lock = threading.Lock()
_pool: tuple[int, HTTPAdapter] | None = None


def _connections() -> HTTPAdapter:
    """This process's connection pool (made anew in a forked child: sockets are not
    shared across processes)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE))
        return _pool[1]


def _pooled[S: requests.Session](session: S) -> S:
    adapter = _connections()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class SumUpError(Exception):
    """A SumUp call failed. `permanent` failures will fail again if retried as they are.

    `code` is the OAuth error code (e.g. `invalid_grant`) or a short label
    (`timeout`, `http_503`); `retry_after` is SumUp's Retry-After in seconds, if given.
    """

    def __init__(
        self,
        code: str,
        *,
        permanent: bool,
        status: int | None = None,
        retry_after: float | None = None,
        description: str = "",
    ) -> None:
        self.code = code
        self.permanent = permanent
        self.status = status
        self.retry_after = retry_after
        self.description = description[:200]
        kind = "permanent" if permanent else "transient"
        detail = f" ({self.description})" if self.description else ""
        super().__init__(f"SumUp {kind} error {code}{detail}")


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_for_status(response: requests.Response) -> SumUpError | None:
    status = response.status_code
    if status == 429:
        return SumUpError(
            "rate_limited", permanent=False, status=status, retry_after=_retry_after(response)
        )
    if status >= 500:
        return SumUpError(f"http_{status}", permanent=False, status=status)
    return None


def _check_token_response(response: requests.Response) -> requests.Response:
    """Authlib hook: classify what Authlib would otherwise misread (429, 5xx, HTML)."""
    error = _error_for_status(response)
    if error is not None:
        raise error
    if "json" not in response.headers.get("Content-Type", ""):
        raise SumUpError(
            f"http_{response.status_code}",
            permanent=response.status_code in (401, 403),
            status=response.status_code,
            description="token endpoint answered without JSON",
        )
    return response


def _transport_error(exc: requests.RequestException) -> SumUpError:
    if isinstance(exc, requests.Timeout):
        return SumUpError("timeout", permanent=False)
    return SumUpError("connection_error", permanent=False, description=type(exc).__name__)


def _oauth_error(exc: OAuthError) -> SumUpError:
    code = str(exc.error or "oauth_error")
    return SumUpError(
        code, permanent=code in PERMANENT_OAUTH_ERRORS, description=str(exc.description or "")
    )


def _oauth_session(**kwargs: Any) -> OAuth2Session:
    session = OAuth2Session(
        client_id=settings.SUMUP_CLIENT_ID,
        client_secret=settings.SUMUP_CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method name)
        **kwargs,
    )
    session.register_compliance_hook("access_token_response", _check_token_response)
    session.register_compliance_hook("refresh_token_response", _check_token_response)
    return _pooled(session)


def authorization_url(*, state: str, code_verifier: str) -> str:
    session = _oauth_session(
        redirect_uri=settings.SUMUP_REDIRECT_URI,
        scope=" ".join(settings.SUMUP_SCOPES),
        code_challenge_method="S256",
    )
    url, _ = session.create_authorization_url(
        f"{settings.SUMUP_BASE_URL}/authorize", state=state, code_verifier=code_verifier
    )
    return str(url)


def _token_call(session: OAuth2Session, method: str, **kwargs: Any) -> dict[str, Any]:
    # Not closed after use: closing a session closes its adapters, the shared pool.
    try:
        token = getattr(session, method)(
            f"{settings.SUMUP_BASE_URL}/token", timeout=TIMEOUT, **kwargs
        )
    except OAuthError as exc:
        raise _oauth_error(exc) from None
    except requests.RequestException as exc:
        raise _transport_error(exc) from None
    except ValueError:  # a body that is not JSON
        raise SumUpError("bad_response", permanent=False) from None
    if not token.get("access_token"):
        raise SumUpError("bad_response", permanent=False, description="no access_token")
    return dict(token)


def exchange_code(*, code: str, code_verifier: str) -> dict[str, Any]:
    """Trade an authorization code for tokens (form-encoded, PKCE verifier, body auth)."""
    session = _oauth_session(redirect_uri=settings.SUMUP_REDIRECT_URI)
    return _token_call(
        session,
        "fetch_token",
        grant_type="authorization_code",
        code=code,
        code_verifier=code_verifier,
    )


def refresh(*, refresh_token: str) -> dict[str, Any]:
    """Use a refresh token. The answer may or may not carry a new refresh token."""
    if not refresh_token:
        # Authlib would fall back to the session's own token; there is none to use.
        raise SumUpError("no_token", permanent=True, description="no refresh token to use")
    return _token_call(_oauth_session(), "refresh_token", refresh_token=refresh_token)


@dataclass(frozen=True)
class Membership:
    merchant_code: str
    name: str


def _api_get(url: str, access_token: str, params: dict[str, Any] | None = None) -> Any:
    if not access_token:
        raise SumUpError("no_token", permanent=True, description="no access token to call with")
    try:
        response = _pooled(requests.Session()).get(
            url,
            params=params,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=TIMEOUT,
        )
    except requests.RequestException as exc:
        raise _transport_error(exc) from None
    error = _error_for_status(response)
    if error is not None:
        raise error
    if response.status_code >= 400:
        raise SumUpError(
            f"http_{response.status_code}", permanent=True, status=response.status_code
        )
    try:
        return response.json()
    except ValueError:
        raise SumUpError("bad_response", permanent=False, status=response.status_code) from None


def merchant_memberships(access_token: str) -> list[Membership]:
    """Accepted merchant memberships of the token's user; falls back to /me on a 404."""
    try:
        body = _api_get(
            f"{settings.SUMUP_API_URL}/memberships",
            access_token,
            params={"resource.type": "merchant", "status": "accepted", "limit": 25},
        )
    except SumUpError as exc:
        if exc.status != 404:
            raise
        me = _api_get(f"{settings.SUMUP_API_URL}/me", access_token)
        code = ((me or {}).get("merchant_profile") or {}).get("merchant_code")
        return [Membership(merchant_code=str(code), name="")] if code else []
    memberships = []
    for item in (body or {}).get("items") or []:
        resource = item.get("resource") or {}
        kind = resource.get("type") or item.get("type")
        code = resource.get("id") or item.get("resource_id")
        if kind == "merchant" and item.get("status") == "accepted" and code:
            memberships.append(
                Membership(merchant_code=str(code), name=str(resource.get("name") or ""))
            )
    return memberships


def merchant_business_name(access_token: str, merchant_code: str) -> str:
    if not MERCHANT_CODE.fullmatch(merchant_code):
        raise SumUpError("bad_merchant_code", permanent=True)
    body = _api_get(f"{settings.SUMUP_BASE_URL}/v1/merchants/{merchant_code}", access_token)
    profile = (body or {}).get("business_profile") or {}
    company = (body or {}).get("company") or {}
    return str(profile.get("name") or company.get("name") or "")[:200]
