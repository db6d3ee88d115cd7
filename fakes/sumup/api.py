"""The SumUp REST endpoints the app reads: memberships, the legacy /me, and merchants."""

from __future__ import annotations

import hashlib
from typing import Any

from fakes.sumup.models import MEMBERSHIP_STATUSES, PROFILE_SCOPES, Grant, User, iso
from fakes.sumup.state import FakeState
from fakes.sumup.wire import Request, Response, problem

INVALID_TOKEN = {"error_message": "invalid access token", "error_code": "NOT_AUTHORIZED"}
MISSING_TOKEN = {"message": "access token required", "error_code": "NOT_AUTHORIZED"}
NOT_ALLOWED = {
    "error_message": "request_not_allowed",
    "error_code": "FORBIDDEN",
    "status_code": "403",
}
MAX_LIMIT = 25


def _unauthorized(body: dict[str, str]) -> Response:
    return Response.json(401, body, {"WWW-Authenticate": 'Bearer realm="SumUp"'})


def authenticate(state: FakeState, request: Request) -> tuple[Grant, User] | Response:
    """The grant and user behind the request's Bearer token, or the 401/403 to answer."""
    header = request.header("authorization") or ""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if not header.strip():
        return _unauthorized(MISSING_TOKEN)
    if scheme.lower() != "bearer" or not token:
        return _unauthorized(INVALID_TOKEN)
    with state.lock:
        record = state.access_tokens.get(token)
        grant = state.grants.get(record.grant_id) if record else None
        if record is None or grant is None or grant.revoked or state.now() >= record.expires_at:
            return _unauthorized(INVALID_TOKEN)
        user = state.get_user(grant.user_email) if grant.user_email else None
        scopes = set(grant.scope.split())
        if user is None or (state.config.enforce_scopes and not scopes & PROFILE_SCOPES):
            return Response.json(403, NOT_ALLOWED)
        return grant, user


def _membership_item(state: FakeState, user: User, index: int) -> dict[str, Any]:
    membership = user.memberships[index]
    merchant = state.merchants[membership.merchant_code]
    created = iso(merchant.created_at)
    digest = hashlib.sha256(f"{user.email}|{merchant.code}".encode()).hexdigest()[:24]
    return {
        "id": f"mem_{digest}",
        "resource_id": merchant.code,
        "type": "merchant",
        "roles": list(membership.roles),
        "permissions": [],
        "status": membership.status,
        "created_at": created,
        "updated_at": created,
        "resource": {
            "id": merchant.code,
            "type": "merchant",
            "name": merchant.name,
            "logo": None,
            "created_at": created,
            "updated_at": created,
            "attributes": {"sandbox": False},
        },
    }


def memberships(state: FakeState, request: Request) -> Response:
    """GET /v0.1/memberships with the filters status, kind / resource.type, resource.name,
    limit (1-25) and offset."""
    if state.config.memberships_404:
        return problem(404, "The requested resource doesn't exist.")
    auth = authenticate(state, request)
    if isinstance(auth, Response):
        return auth
    _, user = auth
    q = {name: values[-1] for name, values in request.query.items()}
    status = q.get("status")
    if status is not None and status not in MEMBERSHIP_STATUSES:
        return problem(
            400, f"status must be one of {', '.join(MEMBERSHIP_STATUSES)}", "bad-request"
        )
    kinds = {q[name] for name in ("kind", "resource.type") if name in q}
    if kinds - {"merchant", "organization"}:
        return problem(400, "kind / resource.type must be merchant or organization", "bad-request")
    try:
        limit = int(q.get("limit", MAX_LIMIT))
        offset = int(q.get("offset", 0))
    except ValueError:
        return problem(400, "limit and offset must be integers", "bad-request")
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        return problem(400, f"limit must be 1-{MAX_LIMIT} and offset >= 0", "bad-request")
    name_filter = q.get("resource.name", "").lower()
    with state.lock:
        items = [_membership_item(state, user, i) for i in range(len(user.memberships))]
    items = [
        item
        for item in items
        if (status is None or item["status"] == status)
        and all(kind == item["type"] for kind in kinds)
        and name_filter in item["resource"]["name"].lower()
    ]
    return Response.json(200, {"items": items[offset : offset + limit], "total_count": len(items)})


def me(state: FakeState, request: Request) -> Response:
    """GET /v0.1/me (legacy, deprecated by SumUp in 2025) and /v0.1/me/merchant-profile."""
    if state.config.me_404:
        return problem(404, "The requested resource doesn't exist.")
    auth = authenticate(state, request)
    if isinstance(auth, Response):
        return auth
    _, user = auth
    with state.lock:
        code = user.default_merchant_code()
        merchant = state.merchants.get(code) if code else None
        profile: dict[str, Any] | None = None
        if merchant is not None:
            profile = {
                "merchant_code": merchant.code,
                "company_name": merchant.name,
                "country": merchant.country,
                "locale": merchant.locale,
                "default_currency": merchant.currency,
                "doing_business_as": {"business_name": merchant.name},
            }
    if request.path.endswith("/merchant-profile"):
        return Response.json(200, profile or {}) if profile else problem(404, "No merchant")
    body: dict[str, Any] = {
        "account": {"username": user.email, "type": "normal"},
        "personal_profile": {
            "first_name": user.first_name,
            "last_name": user.last_name,
            "complete": True,
        },
        "app_settings": {},
        "permissions": {"create_moto_payments": False, "full_transaction_history_view": True},
        "is_migrated_payleven_br": False,
    }
    if profile is not None:
        body["merchant_profile"] = profile
    return Response.json(200, body)


def merchant(state: FakeState, request: Request, code: str) -> Response:
    """GET /v1/merchants/{code}: 404 if unknown, 403 if the user is not a member."""
    auth = authenticate(state, request)
    if isinstance(auth, Response):
        return auth
    _, user = auth
    with state.lock:
        record = state.merchants.get(code)
        if record is None:
            return problem(404, f"Merchant {code} not found.", "not-found")
        if user.membership(code) is None:
            return problem(403, "You are not allowed to access this merchant.", "forbidden")
        created = iso(record.created_at)
        body = {
            "merchant_code": record.code,
            "country": record.country,
            "default_currency": record.currency,
            "default_locale": record.locale,
            "alias": record.name,
            "business_type": "company",
            "business_profile": {"name": record.name},
            "company": {"name": record.name},
            "sandbox": False,
            "created_at": created,
            "updated_at": created,
        }
    return Response.json(200, body)
