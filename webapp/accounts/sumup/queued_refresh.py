"""One queued refresh of an artist's SumUp tokens, as a worker runs it, and what comes
after it: done, or come back later (a `Requeue` the task queues).

It comes for a paced slot of the SumUp budget booked by the dispatcher (`booked`: the
slot's time, epoch seconds; accounts.sumup.sweep) or with none (a retry, a probe), and
takes the budget's bulk share when it runs, waiting a moment for it where it frees
within `refresh.BUDGET_WAIT_AT_MOST`. Refused by the share (`refused` times so far), it
comes back as the window frees or for a slot (`_over_budget`); after a
transient failure with a short backoff, it comes back after a countdown of at most
`MAX_COUNTDOWN`. A longer backoff is a time in the row (`refresh.defer`), and the
dispatcher queues the artist again when it ends. No other wait is a sleep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.conf import settings

from accounts.sumup import refresh, refresh_alerts, refresh_outcomes, sweep
from accounts.sumup.refresh import Outcome
from accounts.sumup.sweep import DELIVERY_LEAD, LOOKAHEAD, Requeue
from events import rate_limits

BACKOFF_BASE = 5.0  # seconds; doubles per attempt, with jitter
BACKOFF_CAP = 300.0  # seconds
MAX_COUNTDOWN = LOOKAHEAD  # a longer retry backoff is a time in the row instead
WINDOW_RETRIES = 1  # a late refresh refused by the share tries the freeing window this often


@dataclass(frozen=True)
class Step:
    """How a queued refresh ended, and the refresh to queue next for it, if any."""

    outcome: Outcome
    then: Requeue | None = None


def run(
    profile_id: int, attempt: int = 0, probe: bool = False, booked: float = 0.0, refused: int = 0
) -> Step:
    """Refresh one artist's SumUp tokens; safe to run twice (see accounts.sumup.refresh).
    `attempt`: transient failures so far; `probe`: refresh even while refresh is halted,
    to learn whether SumUp takes our credentials again."""
    if refresh_alerts.is_halted() and not probe:
        refresh.finished(profile_id)
        return Step(Outcome.HALTED)
    result = refresh.refresh_profile(profile_id, only_if_due=not probe, bulk=True)
    refresh_outcomes.count(result.outcome)
    if result.outcome is Outcome.OVER_BUDGET:
        then = _over_budget(profile_id, attempt, probe, booked, refused, result)
        return Step(result.outcome, then)
    if result.outcome is Outcome.RETRY:
        return Step(result.outcome, _retry(profile_id, attempt, probe, result))
    if result.outcome not in (Outcome.REFRESHED, Outcome.NOT_DUE):
        # A refresh clears the mark in its own write; NOT_DUE may mean another worker
        # holds the claim and will clear it.
        refresh.finished(profile_id)
    return Step(result.outcome)


def _backoff(attempt: int) -> float:
    delay: float = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
    return delay * random.uniform(0.5, 1.5)  # noqa: S311 (jitter, not security)


def _come_back_for(
    slot: rate_limits.Slot, profile_id: int, attempt: int, probe: bool
) -> Requeue | None:
    """Come back for a booked slot; with none free within `LOOKAHEAD`, hand the artist
    back to the dispatcher, which queues it again in its turn."""
    if slot.held:
        return sweep.booked(profile_id, attempt, probe, wait=slot.wait)
    refresh.finished(profile_id)
    sweep.ensure_dispatcher()
    return None


def _over_budget(
    profile_id: int, attempt: int, probe: bool, booked: float, refused: int, result: refresh.Result
) -> Requeue | None:
    """The share was full when the refresh ran. One that came for a booked slot ran a
    little late, behind others in its worker, and met the refreshes of the next slots:
    it comes back as the window frees (a few ms later), into the grant the pacing keeps
    spare per window, up to `WINDOW_RETRIES` times; booking a slot anew instead would add
    a slot to the sweep for each late refresh. Refused that often, or with no slot
    booked, it books one: coming back at the window's time again and again, late
    refreshes take each other's grants and, on a busy machine, that cascade takes over
    (at 3 tries, 1,060 refusals for 2,000 refreshes on a loaded 2-core machine)."""
    wait = result.retry_after or 0.0
    if booked and refused < WINDOW_RETRIES and wait <= MAX_COUNTDOWN:
        return Requeue((profile_id, attempt, probe, booked, refused + 1), countdown=wait)
    slot = refresh.book_budget_slot(within=LOOKAHEAD, lead=DELIVERY_LEAD)
    return _come_back_for(slot, profile_id, attempt, probe)


def _retry(profile_id: int, attempt: int, probe: bool, result: refresh.Result) -> Requeue | None:
    # The row counts failures in a row: attempts survive a backoff handed to the row.
    tries = max(attempt + 1, result.failures)
    if tries >= settings.SUMUP_REFRESH_MAX_ATTEMPTS:
        refresh.give_up(profile_id, result.error)
        return None
    wait = result.retry_after or _backoff(tries - 1)
    if wait <= MAX_COUNTDOWN:
        return Requeue((profile_id, tries, probe), countdown=wait)
    refresh.defer(profile_id, wait)
    sweep.ensure_dispatcher()  # which queues it once its time has come
    return None
