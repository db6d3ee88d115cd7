"""Routing for the fake: trailing-slash refusal, latency, queued faults, then the OAuth,
API and control handlers."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from fakes.sumup import api, control, pages, tokens
from fakes.sumup.models import Fault
from fakes.sumup.oauth import PageError, RedirectError, decide, validate_authorize
from fakes.sumup.state import FakeState
from fakes.sumup.wire import Request, Response, problem, reason

_MERCHANT_PATH = re.compile(r"^/v1/merchants/([^/]+)$")
_METHODS = {
    "authorize": ("GET", "POST"),
    "token": ("POST",),
    "memberships": ("GET",),
    "me": ("GET",),
    "merchants": ("GET",),
}


def endpoint_for(path: str) -> str | None:
    """The endpoint name (as used by faults, latency and stats) a path belongs to."""
    if path == "/authorize":
        return "authorize"
    if path == "/token":
        return "token"
    if path == "/v0.1/memberships":
        return "memberships"
    if path in ("/v0.1/me", "/v0.1/me/merchant-profile"):
        return "me"
    if _MERCHANT_PATH.match(path):
        return "merchants"
    return None


class App:
    """Answers `Request`s from a `FakeState`. `sleep(seconds)` is how latency and hanging
    faults wait; the server passes one that a shutdown interrupts."""

    def __init__(self, state: FakeState, sleep: Callable[[float], object] | None = None) -> None:
        self.state = state
        self._sleep = sleep or threading.Event().wait

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_fake/"):
            return control.handle(self.state, request)
        if path.endswith("/"):
            return problem(404, "URLs ending with a trailing slash are not supported.")
        endpoint = endpoint_for(path)
        if endpoint is None:
            return problem(404, "The requested resource doesn't exist.", "not-found")
        if request.method not in _METHODS[endpoint]:
            return problem(405, f"{request.method} is not allowed here.")
        self.state.record_request(endpoint)
        status = 500
        call = None
        form: dict[str, list[str]] = {}
        try:
            if endpoint == "token":
                form = request.form()
                call = tokens.begin_token_call(self.state, form)
            response = self._delayed(endpoint, request, form)
            status = response.status if not response.drop else 0
            return response
        finally:
            self.state.record_response(endpoint, status)
            if call is not None:
                tokens.end_token_call(self.state, call)

    def _delayed(self, endpoint: str, request: Request, form: dict[str, list[str]]) -> Response:
        config = self.state.config
        latency = config.endpoint_latency_ms.get(endpoint, config.latency_ms)
        if latency > 0:
            self._sleep(latency / 1000)
        fault = self.state.take_fault(endpoint)
        if fault is not None:
            if fault.delay_seconds > 0:
                self._sleep(fault.delay_seconds)
            if fault.drop:
                return Response(0, drop=True)
            if fault.status is not None:
                return fault_response(endpoint, fault)
        return self._dispatch(endpoint, request, form)

    def _dispatch(self, endpoint: str, request: Request, form: dict[str, list[str]]) -> Response:
        state = self.state
        if endpoint == "token":
            status, body, headers = tokens.handle_token(
                state,
                form,
                request.header("authorization"),
                request.header("content-type") or "",
            )
            return Response.json(status, body, headers)
        if endpoint == "authorize":
            return self._authorize(request)
        if endpoint == "memberships":
            return api.memberships(state, request)
        if endpoint == "me":
            return api.me(state, request)
        match = _MERCHANT_PATH.match(request.path)
        assert match is not None
        return api.merchant(state, request, match.group(1))

    def _authorize(self, request: Request) -> Response:
        params = request.query if request.method == "GET" else request.form()
        try:
            authorize_request = validate_authorize(self.state, params)
            if request.method == "GET":
                page = pages.consent_page(authorize_request, self.state.user_emails())
                return Response.html(200, page)
            decision = (params.get("decision") or [""])[0]
            if decision not in ("allow", "deny"):
                raise PageError("decision must be allow or deny.")
            user = (params.get("user") or [""])[0] or self.state.user_emails()[0]
            return Response.redirect(
                decide(self.state, authorize_request, user, decision == "allow")
            )
        except PageError as exc:
            return Response.html(400, pages.error_page(str(exc)))
        except RedirectError as exc:
            return Response.redirect(exc.url)


def fault_response(endpoint: str, fault: Fault) -> Response:
    """The forced answer a queued fault describes."""
    status = fault.status or 503
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    if isinstance(fault.body, str):
        return Response.text(status, fault.body, headers)
    if fault.body is not None:
        return Response.json(status, fault.body, headers)
    if endpoint == "token":
        error = {429: "too_many_requests", 503: "temporarily_unavailable"}.get(status)
        description = (
            "Too many requests, please try again later." if status == 429 else reason(status)
        )
        body = {"error": error or "server_error", "error_description": description}
        return Response.json(status, body, headers)
    response = problem(status, reason(status))
    response.headers.update(headers)
    return response
