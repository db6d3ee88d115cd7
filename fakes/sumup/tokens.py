"""The token endpoint (`POST /token`): client authentication, the authorization_code,
refresh_token and client_credentials grants, rotation policy and per-call counters."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from fakes.sumup.models import Client, Grant, OAuthError, token_hash
from fakes.sumup.oauth import normalise_scope
from fakes.sumup.state import FakeState

TOKEN_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class TokenCall:
    """Who a token call was about, worked out before it is handled (for the counters)."""

    grant_type: str
    keys: tuple[str, ...]  # "user:<email>" and "grant:<id>" for refresh calls, else empty


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def begin_token_call(state: FakeState, form: dict[str, list[str]]) -> TokenCall:
    """Count a token call, whatever its outcome (faults included)."""
    grant_type = _first(form, "grant_type") or "missing"
    user: str | None = None
    grant: Grant | None = None
    with state.lock:
        counters = state.counters
        if grant_type == "authorization_code":
            code = state.codes.get(_first(form, "code") or "")
            if code is not None:
                user = code.user_email
                grant = state.grants.get(code.grant_id or "")
        elif grant_type == "refresh_token":
            value = _first(form, "refresh_token")
            if value:
                counters.refresh_calls_by_token[token_hash(value)] += 1
                record = state.refresh_tokens.get(value)
                grant = state.grants.get(record.grant_id) if record else None
                user = grant.user_email if grant else None
        counters.token_calls[grant_type] += 1
        if user is not None:
            counters.token_calls_by_user.setdefault(user, Counter())[grant_type] += 1
        if grant is not None:
            grant.token_calls[grant_type] = grant.token_calls.get(grant_type, 0) + 1
        keys: tuple[str, ...] = ()
        if grant_type == "refresh_token" and grant is not None:
            keys = (f"user:{user}", f"grant:{grant.id}") if user else (f"grant:{grant.id}",)
            for key in keys:
                counters.refreshes_in_flight[key] += 1
                current = counters.refreshes_in_flight[key]
                counters.max_concurrent_refreshes[key] = max(
                    current, counters.max_concurrent_refreshes[key]
                )
    return TokenCall(grant_type, keys)


def end_token_call(state: FakeState, call: TokenCall) -> None:
    with state.lock:
        for key in call.keys:
            state.counters.refreshes_in_flight[key] -= 1


def handle_token(
    state: FakeState,
    form: dict[str, list[str]],
    authorization: str | None,
    content_type: str,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Answer a token request: (status, JSON body, headers)."""
    try:
        with state.lock:
            body = _handle(state, form, authorization, content_type)
        return 200, body, dict(TOKEN_HEADERS)
    except OAuthError as exc:
        headers = dict(TOKEN_HEADERS)
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="SumUp"'
        return exc.status, exc.body(), headers


def _handle(
    state: FakeState, form: dict[str, list[str]], authorization: str | None, content_type: str
) -> dict[str, Any]:
    if content_type.split(";")[0].strip().lower() != FORM_TYPE:
        raise OAuthError("invalid_request", f"Content-Type must be {FORM_TYPE}")
    client = authenticate_client(state, form, authorization)
    repeated = sorted(name for name, values in form.items() if len(values) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"parameters repeated: {', '.join(repeated)}")
    grant_type = _first(form, "grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type parameter is missing")
    if grant_type == "authorization_code":
        return _exchange_code(state, client, form)
    if grant_type == "refresh_token":
        return _refresh(state, client, form)
    if grant_type == "client_credentials":
        grant = state.new_grant(client.client_id, None, normalise_scope(_first(form, "scope")))
        grant.token_calls[grant_type] = 1
        return _token_body(state, grant, None)
    raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")


def authenticate_client(
    state: FakeState, form: dict[str, list[str]], authorization: str | None
) -> Client:
    """HTTP Basic or client_id/client_secret in the body; 401 invalid_client otherwise."""

    def invalid(description: str) -> OAuthError:
        return OAuthError("invalid_client", description, status=401)

    if state.config.invalid_client:
        raise invalid("Client authentication failed")
    body_id, body_secret = _first(form, "client_id"), _first(form, "client_secret")
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise invalid("Malformed Basic credentials") from None
        raw_id, colon, raw_secret = decoded.partition(":")
        if not colon:
            raise invalid("Malformed Basic credentials")
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if (body_id is not None and body_id != client_id) or (
            body_secret is not None and body_secret != secret
        ):
            raise invalid("Basic credentials and body credentials disagree")
    elif body_id is not None and body_secret is not None:
        client_id, secret = body_id, body_secret
    else:
        raise invalid("Client authentication is missing")
    client = state.get_client(client_id)
    if client is None or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise invalid("Client authentication failed")
    return client


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _exchange_code(state: FakeState, client: Client, form: dict[str, list[str]]) -> dict[str, Any]:
    value = _first(form, "code")
    if not value:
        raise OAuthError("invalid_request", "code parameter is missing")
    code = state.codes.get(value)
    if code is None:
        raise OAuthError("invalid_grant", "code parameter invalid or expired")
    if code.used:
        # RFC 6749 §4.1.2: a replayed code revokes what was issued from it.
        if code.grant_id:
            state.revoke_grant(code.grant_id, "authorization code reused")
        raise OAuthError("invalid_grant", "code parameter invalid or expired (already used)")
    if state.now() >= code.expires_at:
        raise OAuthError("invalid_grant", "code parameter invalid or expired")
    if code.client_id != client.client_id:
        raise OAuthError("invalid_grant", "code was issued to another client")
    redirect_uri = _first(form, "redirect_uri")
    if redirect_uri is None:
        raise OAuthError("invalid_request", "redirect_uri parameter is missing")
    if redirect_uri != code.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    if code.code_challenge is not None:
        verifier = _first(form, "code_verifier")
        if not verifier:
            raise OAuthError("invalid_request", "code_verifier parameter is missing")
        if not hmac.compare_digest(_s256(verifier), code.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    code.used = True
    grant = state.new_grant(client.client_id, code.user_email, code.scope)
    grant.code, code.grant_id = code.code, grant.id
    grant.token_calls["authorization_code"] = 1
    state.record_event("codes_exchanged")
    return _token_body(state, grant, state.issue_refresh_token(grant).token)


def _refresh(state: FakeState, client: Client, form: dict[str, list[str]]) -> dict[str, Any]:
    value = _first(form, "refresh_token")
    if not value:
        raise OAuthError("invalid_request", "refresh_token parameter is missing")
    record = state.refresh_tokens.get(value)
    grant = state.grants.get(record.grant_id) if record else None
    if record is None or grant is None:
        raise OAuthError("invalid_grant", "refresh token invalid or expired")
    if grant.client_id != client.client_id:
        raise OAuthError("invalid_grant", "refresh token was issued to another client")
    if grant.revoked:
        raise OAuthError("invalid_grant", f"refresh token invalid: {grant.revoked_reason}")
    now, config = state.now(), state.config
    if now >= record.expires_at:
        raise OAuthError("invalid_grant", "refresh token invalid or expired")
    if record.replaced_by is not None and config.reject_reuse:
        raise OAuthError("invalid_grant", "refresh token has been rotated out")
    requested = _first(form, "scope")
    scope = grant.scope
    if requested:
        if not set(requested.split()) <= set(grant.scope.split()):
            raise OAuthError("invalid_scope", "scope exceeds what the user granted")
        scope = normalise_scope(requested)
    record.uses += 1
    new_refresh: str | None
    if config.rotation == "never":
        new_refresh = None
    elif config.rotation == "always" or record.expires_at - now <= config.rotation_window:
        new_refresh = state.issue_refresh_token(grant).token
        if record.replaced_by is None:
            record.replaced_by = new_refresh
        state.record_event("refresh_tokens_rotated")
    else:
        new_refresh = record.token
    return _token_body(state, grant, new_refresh, scope)


def _token_body(
    state: FakeState, grant: Grant, refresh_token: str | None, scope: str | None = None
) -> dict[str, Any]:
    access = state.issue_access_token(grant)
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": state.config.expires_in,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    body["scope"] = scope or grant.scope
    return body
