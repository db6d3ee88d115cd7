"""The authorize leg of OAuth 2.0 as SumUp speaks it: request validation and consent."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fakes.sumup.models import DEFAULT_SCOPES, AuthCode
from fakes.sumup.state import FakeState

_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class PageError(Exception):
    """The authorize request can't be trusted to redirect: show a 400 page instead."""


class RedirectError(Exception):
    """An authorize error reported to the client through its redirect URI."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str):
        super().__init__(f"{error}: {description}")
        self.url = build_redirect(
            redirect_uri, {"error": error, "error_description": description, "state": state}
        )


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated authorize request (the query of GET /authorize or the consent form)."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    def hidden_fields(self) -> dict[str, str]:
        fields = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
        }
        return {name: value for name, value in fields.items() if value is not None}


def build_redirect(redirect_uri: str, params: dict[str, str | None]) -> str:
    """redirect_uri with `params` (None values left out) added to its own query."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(name, value) for name, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def normalise_scope(raw: str | None) -> str:
    """Space-separated, de-duplicated; SumUp's defaults when omitted or empty."""
    scopes = list(dict.fromkeys((raw or "").split()))
    return " ".join(scopes or DEFAULT_SCOPES)


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def validate_authorize(state: FakeState, params: dict[str, list[str]]) -> AuthorizeRequest:
    """Check an authorize request. Raises PageError (bad client or redirect URI: never
    redirect, RFC 6749 §4.1.2.1) or RedirectError (everything else)."""
    client_id = _single(params, "client_id")
    redirect_uri = _single(params, "redirect_uri")
    client = state.get_client(client_id) if client_id else None
    if client is None or len(params.get("client_id", [])) > 1:
        raise PageError(f"Unknown or invalid client_id {client_id!r}.")
    if not redirect_uri or len(params.get("redirect_uri", [])) > 1:
        raise PageError("redirect_uri is missing.")
    if redirect_uri not in client.redirect_uris:
        raise PageError(f"redirect_uri {redirect_uri!r} is not registered for this app.")
    state_value = _single(params, "state")

    def fail(error: str, description: str) -> RedirectError:
        return RedirectError(redirect_uri, state_value, error, description)

    duplicated = sorted(name for name, values in params.items() if len(values) > 1)
    if duplicated:
        raise fail("invalid_request", f"parameters repeated: {', '.join(duplicated)}")
    response_type = _single(params, "response_type")
    if response_type != "code":
        raise fail("unsupported_response_type", "response_type must be code")
    challenge = _single(params, "code_challenge")
    method = _single(params, "code_challenge_method")
    if challenge is None and method is not None:
        raise fail("invalid_request", "code_challenge_method without code_challenge")
    if challenge is not None:
        if method != "S256":
            raise fail("invalid_request", "code_challenge_method must be S256")
        if not _PKCE_CHALLENGE.match(challenge):
            raise fail("invalid_request", "code_challenge is malformed")
    elif state.config.require_pkce:
        raise fail("invalid_request", "code_challenge is required")
    return AuthorizeRequest(
        client_id=client_id or "",
        redirect_uri=redirect_uri,
        scope=normalise_scope(_single(params, "scope")),
        state=state_value,
        code_challenge=challenge,
        code_challenge_method=method,
    )


def decide(state: FakeState, request: AuthorizeRequest, user_email: str, allow: bool) -> str:
    """The user's answer on the consent page; returns the URL to redirect the browser to."""
    if not allow:
        state.record_event("denials")
        return build_redirect(
            request.redirect_uri,
            {
                "error": "access_denied",
                "error_description": "The user denied access",
                "state": request.state,
            },
        )
    with state.lock:
        user = state.get_user(user_email)
        if user is None:
            raise PageError(f"Unknown user {user_email!r}.")
        now = state.now()
        code = AuthCode(
            code=secrets.token_urlsafe(24),
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            user_email=user_email,
            scope=request.scope,
            issued_at=now,
            expires_at=now + state.config.code_lifetime,
            code_challenge=request.code_challenge,
            code_challenge_method=request.code_challenge_method,
        )
        state.codes[code.code] = code
        state.record_event("codes_issued")
        merchant_code = user.default_merchant_code()
    return build_redirect(
        request.redirect_uri,
        {"code": code.code, "state": request.state, "merchant_code": merchant_code},
    )
