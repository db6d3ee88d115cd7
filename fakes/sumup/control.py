"""The JSON control API under `/_fake/`: reset, config, faults, revoke, clock, users,
clients, grants, stats. Never delayed, never faulted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fakes.sumup.models import ENDPOINTS, Fault, iso
from fakes.sumup.state import FakeState
from fakes.sumup.wire import Request, Response


class ControlError(Exception):
    """A bad control request: answered 400 with {"error": message}."""


def _object(request: Request) -> dict[str, Any]:
    try:
        data = request.json() if request.method == "POST" else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ControlError("body must be a JSON object")
    return data


def parse_fault(data: dict[str, Any]) -> tuple[str, Fault]:
    """(endpoint, Fault) from a control body. Omitted status: 503, or pass-through (answer
    normally after the delay) when only delay_seconds is given."""
    endpoint = data.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise ControlError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
    delay = float(data.get("delay_seconds", 0) or 0)
    status = data.get("status", None if delay > 0 else 503)
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise ControlError("status must be an HTTP status code or null")
    retry_after = data.get("retry_after")
    body = data.get("body")
    if body is not None and not isinstance(body, dict | list | str):
        raise ControlError("body must be an object, a list or a string")
    fault = Fault(
        status=status,
        count=int(data.get("count", 1)),
        retry_after=None if retry_after is None else _retry_after(retry_after),
        delay_seconds=delay,
        body=body,
        drop=bool(data.get("drop", False)),
    )
    if fault.count < 1:
        raise ControlError("count must be at least 1")
    return str(endpoint), fault


def _retry_after(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _reset(state: FakeState, data: dict[str, Any]) -> Any:
    state.reset()
    return {"ok": True}


def _config(state: FakeState, data: dict[str, Any]) -> Any:
    return state.configure(**data).as_dict() if data else state.config.as_dict()


def _faults(state: FakeState, data: dict[str, Any]) -> Any:
    if data.get("clear"):
        endpoint = data.get("endpoint")
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ControlError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
        state.clear_faults(endpoint)
    elif data:
        specs = data.get("faults", [data])
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise ControlError("faults must be a list of objects")
        for endpoint, fault in [parse_fault(spec) for spec in specs]:
            state.add_fault(endpoint, fault)
    return state.pending_faults()


def _revoke(state: FakeState, data: dict[str, Any]) -> Any:
    if "email" in data:
        if state.get_user(str(data["email"])) is None:
            raise ControlError(f"unknown user {data['email']!r}")
        return {"revoked": state.revoke_user(str(data["email"]))}
    token = data.get("refresh_token") or data.get("access_token") or data.get("token")
    if token:
        return {"revoked": int(state.revoke_token(str(token)))}
    raise ControlError("give email, refresh_token or access_token")


def _clock(state: FakeState, data: dict[str, Any]) -> Any:
    if "advance" in data:
        state.clock.advance(float(data["advance"]))
    elif "offset" in data:
        state.clock.set_offset(float(data["offset"]))
    now = state.now()
    return {"now": iso(now), "timestamp": now, "offset": state.clock.offset}


def _users(state: FakeState, data: dict[str, Any]) -> Any:
    if data:
        email = data.get("email")
        merchants = data.get("merchants", [])
        if not isinstance(email, str) or not email:
            raise ControlError("email is required")
        if not isinstance(merchants, list) or not all(
            isinstance(m, dict) and m.get("code") for m in merchants
        ):
            raise ControlError("merchants must be a list of objects with a code")
        state.add_user(email, merchants)
    with state.lock:
        return {
            "users": [
                {
                    "email": user.email,
                    "default_merchant_code": user.default_merchant_code(),
                    "merchants": [
                        {
                            "code": m.merchant_code,
                            "name": state.merchants[m.merchant_code].name,
                            "status": m.status,
                            "roles": m.roles,
                        }
                        for m in user.memberships
                    ],
                }
                for user in state.users.values()
            ]
        }


def _clients(state: FakeState, data: dict[str, Any]) -> Any:
    if data:
        uris = data.get("redirect_uris")
        if not data.get("client_id") or not data.get("client_secret") or not isinstance(uris, list):
            raise ControlError("client_id, client_secret and redirect_uris (a list) are required")
        state.add_client(str(data["client_id"]), str(data["client_secret"]), [str(u) for u in uris])
    with state.lock:
        return {
            "clients": [
                {"client_id": c.client_id, "redirect_uris": c.redirect_uris}
                for c in state.clients.values()
            ]
        }


def _grants(state: FakeState, data: dict[str, Any]) -> Any:
    if not data:
        raise ControlError("POST {email, client_id?, scope?, refresh_age_seconds?}")
    return state.mint_grant(
        str(data.get("email", "artist@example.com")),
        client_id=data.get("client_id"),
        scope=data.get("scope"),
        refresh_age_seconds=float(data.get("refresh_age_seconds", 0)),
    )


def _stats(state: FakeState, data: dict[str, Any]) -> Any:
    return state.stats()


def _health(state: FakeState, data: dict[str, Any]) -> Any:
    return {"ok": True}


_Handler = Callable[[FakeState, dict[str, Any]], Any]
ROUTES: dict[str, tuple[tuple[str, ...], _Handler]] = {
    "/_fake/reset": (("POST",), _reset),
    "/_fake/config": (("GET", "POST"), _config),
    "/_fake/faults": (("GET", "POST"), _faults),
    "/_fake/revoke": (("POST",), _revoke),
    "/_fake/clock": (("GET", "POST"), _clock),
    "/_fake/users": (("GET", "POST"), _users),
    "/_fake/clients": (("GET", "POST"), _clients),
    "/_fake/grants": (("POST",), _grants),
    "/_fake/stats": (("GET",), _stats),
    "/_fake/health": (("GET",), _health),
}


def handle(state: FakeState, request: Request) -> Response:
    route = ROUTES.get(request.path)
    if route is None:
        return Response.json(404, {"error": f"no control endpoint {request.path}"})
    methods, handler = route
    if request.method not in methods:
        return Response.json(405, {"error": f"use {' or '.join(methods)}"})
    try:
        return Response.json(200, handler(state, _object(request)))
    except (ControlError, ValueError, TypeError, KeyError) as exc:
        return Response.json(400, {"error": str(exc)})
