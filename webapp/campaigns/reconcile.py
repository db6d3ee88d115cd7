"""Settling the sends whose worker died after claiming them: ask the provider, never guess.

A row still `sending` once its claim lapsed (`claimed_until` passed; a claim outlives the
send task's hard time limit, so its worker is gone) may have had its request made, or
not. Beat's recovery (campaigns.dispatch.recover) asks the provider's log about each
(campaigns.provider.look_up: a message to the row's address, tagged with the campaign's
kind, accepted since the claim less `CLOCK_ALLOWANCE`) and settles it:

- accepted: `sent`, with the provider's message id and time;
- absent, the claim taken less than `IDEMPOTENT_RESEND_WITHIN` ago, attempts left and
  the campaign running or paused: `queued` again, due at once, so it is sent again under
  the same idempotency key. The provider remembers that key for 30 minutes (Brevo's
  TTL), well past this window, so even a log that lags behind cannot turn the resend
  into a second email: the provider drops the repeat of a message it took. The artist's
  lapse mark stays with the row;
- absent otherwise: `unknown`, for staff, as a resend could no longer count on the key;
- cannot tell (the provider down, slow or unreadable): left `sending` and asked again at
  the next recovery until `IDEMPOTENT_RESEND_WITHIN` has passed since the claim; then
  `unknown`.

A batch's rows were sent in one request (campaigns.sending), which the provider took
whole or not at all, and are settled together: each row the log shows is `sent`; once
any of them had a clear answer (shown or absent), the others are queued again together,
in one statement, under their batch key, so they go out in one request again: if the
first was taken after all (its messages only lagging in the log), the provider drops
the repeat whole and answers with the messages it took. Looking up every row of a big
batch is not needed for that, so a run's lookups reach more batches.

With a provider that has no log to ask (any backend but Brevo) every lapsed claim is
`unknown` at once, and staff check and resend. A run makes at most `LOOKUPS_PER_RUN`
lookups, none started after `LOOKUP_SECONDS`; the rest wait for the next run, oldest
claims first.

Every change is a conditional UPDATE naming the claim (status `sending` and its attempt
number), so a row that moved meanwhile is left as it is.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from campaigns import claims, provider, sending
from campaigns.models import Campaign, Recipient
from campaigns.provider import Verdict

log = logging.getLogger(__name__)

# Well inside the provider's 30-minute idempotency key TTL (Brevo): a send queued again
# has ten minutes more to reach its turn at the campaign's rate.
IDEMPOTENT_RESEND_WITHIN = timedelta(minutes=20)
CLOCK_ALLOWANCE = timedelta(seconds=60)  # how far the provider's clock may be behind ours
LOOKUPS_PER_RUN = 50
# No lookup starts later in a run: one more meeting the longest provider timeout allowed
# (ANYMAIL_REQUESTS_TIMEOUT, 30 s) still ends inside the recovery task's soft time limit
# (45 s, jobs.campaigns).
LOOKUP_SECONDS = 10.0

LOST_CLAIM_ERROR = "the worker stopped during the provider call: outcome unknown"
NOT_TAKEN_ERROR = (
    "the worker stopped before the provider took the message: "
    "sent again under the same idempotency key"
)
NOT_RESENT_ERROR = (
    "the worker stopped during the provider call and the provider shows no message, "
    "but it is too late or no longer allowed to send it again: outcome unknown"
)

S = Recipient.Status
RESENDABLE = (Campaign.Status.RUNNING, Campaign.Status.PAUSED)


class Outcome(enum.StrEnum):
    SENT = "sent"  # the provider had the message
    REQUEUED = "requeued"  # it had none: queued to be sent again
    UNKNOWN = "unknown"
    WAITING = "waiting"  # still `sending`: asked again at the next run


@dataclass
class Settled:
    """How many lapsed claims came to each outcome, by campaign."""

    by_campaign: dict[int, Counter[Outcome]] = field(default_factory=dict)

    def add(self, campaign_id: int, outcome: Outcome, n: int = 1) -> None:
        self.by_campaign.setdefault(campaign_id, Counter())[outcome] += n

    def total(self, outcome: Outcome) -> int:
        return sum(counts[outcome] for counts in self.by_campaign.values())


def settle_lapsed_claims(now: datetime) -> Settled:
    """Settle every claim lapsed at `now` that this run has time for (see the module)."""
    settled = Settled()
    lapsed = list(
        Recipient.objects.filter(status=S.SENDING, claimed_until__lt=now)
        .select_related("campaign")
        .only("attempts", "email", "claimed_at", "batch_key", "campaign__kind", "campaign__status")
        .order_by("claimed_at", "pk")
    )
    batches: dict[object, list[Recipient]] = {}
    for row in lapsed:
        batches.setdefault(row.batch_key or row.pk, []).append(row)
    asking = provider.can_look_up()
    budget = _Budget()
    for rows in batches.values():
        if not asking:
            for row in rows:
                _add(settled, row, _unknown([row], LOST_CLAIM_ERROR, now))
            continue
        for row, outcome in _settle_batch(rows, now, budget):
            _add(settled, row, outcome)
    return settled


@dataclass
class _Budget:
    """The lookups left to a run: `LOOKUPS_PER_RUN`, none started after `LOOKUP_SECONDS`."""

    used: int = 0
    started: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        if self.used >= LOOKUPS_PER_RUN or time.monotonic() - self.started > LOOKUP_SECONDS:
            return False
        self.used += 1
        return True


def _add(settled: Settled, row: Recipient, outcome: Outcome | None) -> None:
    if outcome is not None:
        settled.add(row.campaign_id, outcome)


def _settle_batch(
    rows: list[Recipient], now: datetime, budget: _Budget
) -> list[tuple[Recipient, Outcome | None]]:
    """Settle the lapsed rows of one request with the provider's log; an outcome of None
    is a row that moved meanwhile."""
    if any(row.claimed_at is None for row in rows):  # no instant to ask from
        return [(row, _unknown([row], LOST_CLAIM_ERROR, now)) for row in rows]
    claimed_at = min(row.claimed_at for row in rows if row.claimed_at is not None)
    in_time = now - claimed_at < IDEMPOTENT_RESEND_WITHIN
    outcomes: list[tuple[Recipient, Outcome | None]] = []
    rest: list[Recipient] = []
    clear = asked = False
    for row in rows:
        if not budget.take():
            rest.append(row)
            continue
        asked = True
        assert row.claimed_at is not None
        found = provider.look_up(row.email, row.campaign.kind, row.claimed_at - CLOCK_ALLOWANCE)
        if found.verdict is Verdict.ACCEPTED:
            clear = True
            outcomes.append((row, _sent(row, found.message_id, found.accepted_at, now)))
            continue
        clear = clear or found.verdict is Verdict.ABSENT
        if found.verdict is Verdict.CANNOT_TELL:
            log.warning(
                "campaign recipient %s: the provider cannot tell whether it took the message (%s)",
                row.pk,
                found.error,
            )
        rest.append(row)
    if not clear:
        if asked and not in_time:
            return outcomes + [(row, _unknown([row], LOST_CLAIM_ERROR, now)) for row in rest]
        return outcomes + [(row, Outcome.WAITING) for row in rest]
    resendable = [
        row
        for row in rest
        if in_time and row.attempts < sending.MAX_ATTEMPTS and row.campaign.status in RESENDABLE
    ]
    requeued = claims.update(
        resendable,
        S.SENDING,
        status=S.QUEUED,
        next_attempt_at=now,
        dispatched_at=None,
        last_error=NOT_TAKEN_ERROR,
        claimed_until=None,
        updated_at=now,
    )
    for row in rest:
        if row in resendable:
            outcomes.append((row, Outcome.REQUEUED if row.pk in requeued else None))
        else:
            outcomes.append((row, _unknown([row], NOT_RESENT_ERROR, now)))
    return outcomes


def _sent(
    row: Recipient, message_id: str, accepted_at: datetime | None, now: datetime
) -> Outcome | None:
    settled = claims.update(
        [row],
        S.SENDING,
        status=S.SENT,
        message_id=message_id[:255],
        sent_at=min(accepted_at or now, now),
        last_error="",
        claimed_until=None,
        updated_at=now,
    )
    return Outcome.SENT if settled else None


def _unknown(rows: list[Recipient], error: str, now: datetime) -> Outcome | None:
    marked = claims.update(
        rows, S.SENDING, status=S.UNKNOWN, last_error=error, claimed_until=None, updated_at=now
    )
    return Outcome.UNKNOWN if marked else None
