"""Counters of what clients did to the fake, and their JSON snapshot."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakes.sumup.state import FakeState


class Stats:
    """Counters of what clients did. Read them through `FakeState.stats()`."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.responses: dict[str, Counter[int]] = {}
        self.token_calls: Counter[str] = Counter()
        self.token_calls_by_user: dict[str, Counter[str]] = {}
        self.refresh_calls_by_token: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.faults_served: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        # keyed "user:<email>" and "grant:<id>"
        self.refreshes_in_flight: Counter[str] = Counter()
        self.max_concurrent_refreshes: Counter[str] = Counter()


def snapshot(state: FakeState) -> dict[str, Any]:
    """Every counter, JSON-ready. The caller holds `state.lock`."""
    c = state.counters
    return {
        "requests": dict(c.requests),
        "responses": {
            name: {str(status): n for status, n in counter.items()}
            for name, counter in c.responses.items()
        },
        "token_calls": {"total": sum(c.token_calls.values()), **c.token_calls},
        "token_calls_by_user": {
            email: {"total": sum(counter.values()), **counter}
            for email, counter in c.token_calls_by_user.items()
        },
        "token_calls_by_grant": {
            grant.id: {"user": grant.user_email, **grant.token_calls}
            for grant in state.grants.values()
        },
        "refresh_calls_by_token": dict(c.refresh_calls_by_token),
        "max_concurrent_refreshes_by_user": {
            key.removeprefix("user:"): n
            for key, n in c.max_concurrent_refreshes.items()
            if key.startswith("user:")
        },
        "max_concurrent_refreshes_by_grant": {
            key.removeprefix("grant:"): n
            for key, n in c.max_concurrent_refreshes.items()
            if key.startswith("grant:")
        },
        "max_in_flight": dict(c.max_in_flight),
        "faults_served": dict(c.faults_served),
        "codes_issued": c.events["codes_issued"],
        "codes_exchanged": c.events["codes_exchanged"],
        "denials": c.events["denials"],
        "access_tokens_issued": c.events["access_tokens_issued"],
        "refresh_tokens_issued": c.events["refresh_tokens_issued"],
        "refresh_tokens_rotated": c.events["refresh_tokens_rotated"],
        "grants": len(state.grants),
        "grants_revoked": c.events["grants_revoked"],
        "events": dict(c.events),
        "clock_offset": state.clock.offset,
    }
