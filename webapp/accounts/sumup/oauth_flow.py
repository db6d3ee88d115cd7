"""Server-side bookkeeping of the authorization-code flow, kept in the user's session.

A flow is started by a CSRF-protected POST and gets a random `state` and PKCE verifier.
The state is bound to the user, lives 10 minutes and is consumed by the first callback
that presents it, before anything else happens. A few flows may be pending at once (an
artist with two tabs), never more than MAX_PENDING.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from accounts.sumup import crypto

SESSION_KEY = "sumup_oauth_flows"
CHOICE_KEY = "sumup_merchant_choice"
STATE_LIFETIME = 10 * 60  # seconds
MAX_PENDING = 5


@dataclass(frozen=True)
class PendingFlow:
    state: str
    code_verifier: str
    user_id: int
    next_url: str
    started_at: float

    @property
    def expired(self) -> bool:
        return time.time() - self.started_at > STATE_LIFETIME


def start(session: SessionBase, *, user_id: int, next_url: str) -> PendingFlow:
    flow = PendingFlow(
        state=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),
        user_id=user_id,
        next_url=next_url,
        started_at=time.time(),
    )
    pending = [entry for entry in session.get(SESSION_KEY, []) if isinstance(entry, dict)]
    session[SESSION_KEY] = [*pending[-(MAX_PENDING - 1) :], asdict(flow)]
    return flow


class StateError(Exception):
    """The callback's state is missing, unknown, already used, expired or someone else's."""


def consume(session: SessionBase, *, state: str, user_id: int) -> PendingFlow:
    """Find and remove the pending flow for `state`; raise StateError if there is none."""
    if not state:
        raise StateError("missing")
    pending: list[dict[str, Any]] = list(session.get(SESSION_KEY, []))
    found: dict[str, Any] | None = None
    # As bytes: compare_digest raises TypeError on a str that is not ASCII, and the
    # callback's state is whatever the query string says.
    given = state.encode("utf-8", "surrogatepass")
    for entry in pending:
        # Compare against every entry, in constant time, so timing reveals nothing.
        stored = str(entry.get("state", "")).encode("utf-8", "surrogatepass")
        if hmac.compare_digest(stored, given) and found is None:
            found = entry
    if found is None:
        raise StateError("unknown")
    pending.remove(found)
    session[SESSION_KEY] = pending
    flow = PendingFlow(**found)
    if flow.user_id != user_id:
        raise StateError("other user")
    if flow.expired:
        raise StateError("expired")
    return flow


def hold_merchant_choice(
    session: SessionBase, *, token: dict[str, Any], merchants: list[dict[str, str]], next_url: str
) -> None:
    """Keep an exchanged token (encrypted) while the artist picks one of several merchants."""
    session[CHOICE_KEY] = {
        "token": crypto.encrypt(json.dumps(token)),
        "merchants": merchants,
        "next_url": next_url,
        "held_at": time.time(),
    }


def peek_merchant_choice(session: SessionBase) -> dict[str, Any] | None:
    choice = session.get(CHOICE_KEY)
    if not isinstance(choice, dict) or time.time() - choice.get("held_at", 0) > STATE_LIFETIME:
        return None
    return choice


def take_merchant_choice(session: SessionBase) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Remove the held choice; return (its public part, the decrypted token)."""
    choice = peek_merchant_choice(session)
    session.pop(CHOICE_KEY, None)
    if choice is None:
        return None
    token: dict[str, Any] = json.loads(crypto.decrypt(choice["token"]))
    return choice, token
