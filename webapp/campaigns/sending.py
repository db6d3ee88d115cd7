"""Sending recipients their email, at most once, across any number of workers, many
recipients to a provider request.

A task's recipients are sent in requests: with a provider that takes batches
(campaigns.provider.can_batch: Brevo) each request carries many recipients of one
campaign, rendered once (campaigns.messages.build_batch); with any other, one. A
request's rows share one batch key, its idempotency key (`Recipient.batch_key`), taken
at their first claim and kept: a row sent again goes out under the same key with the
others of that key only, never beside rows of another, so a provider that took the
first request drops the repeat whole. A row claimed by the release before (no batch
key) is sent again alone under its own `idempotency_key`, as that release sent it.

The protocol, for one request's rows:
1. read them in one query: only `queued` rows of a running campaign, due for their next
   attempt, are worked on; an artist who is no longer eligible (suppressed, connected,
   inactive, no longer approved: campaigns.audience) is marked `skipped` here. A row
   whose batch key another row still holds in a claim waits, as all of a key go
   together;
2. render the message;
3. claim them, in one transaction: one `UPDATE ... SET status='sending',
   attempts=attempts+1 WHERE id=ANY(...) AND status='queued' AND attempts=<as read>`
   (campaigns.claims); exactly one process wins each row, and a redelivered or
   duplicated task finds its rows claimed, sent or finished and stops. Then the artists
   are held for this lapse in one statement (campaigns.audience), and those another
   notice holds are skipped. A committed claim means "the request may be made": a
   worker that dies after it leaves the rows `sending` for recovery (below);
4. take the slots of the global email rate for the claimed rows together, one per
   message (campaigns.rate, at the campaign's rate), in the provider call's hook right
   before the request is written (campaigns.provider.send's `before_request`), so that
   nothing but the write lies between the slots and the request. Without them no
   request is made and the claim is undone (each row `queued` at its attempt number
   and lapse mark as before, the artists' marks as they were). A request a little
   early for its slots (they free within `WAIT_AT_MOST`) waits for them in the hook and
   is made; further over the rate the rows, and those of the task's later requests, go
   back to the campaign's schedule, which hands them out again at its next free place
   (a task waiting longer would contend for the slots with the sends the schedule put
   there); a limiter that fails (its Redis gone) leaves the rows queued, due again
   after a backoff that uses none of their attempts, and the dispatcher hands them out
   once due. Whether a request would be over the rate is asked first, taking no slot
   (`rate.wait_for_slots`), so a request that would be refused costs no render and no
   claim, and one a little early spends part of its wait rendering and claiming;
5. record the provider's answer (campaigns.provider) for each row with an
   UPDATE that names the claim (the attempt number): `sent`, each with its own message
   id, or `failed` for a recipient the provider refused; for the whole request `queued`
   again with one backoff (429, 5xx, no connection); or `unknown`, kept for a request
   that may have reached the provider (a timeout, a dropped connection, the time limit):
   all of its rows, never sent again but by staff. A request refused whole on its first
   attempt (a 4xx: one bad address refuses a batch) made no message: its rows are
   queued again to go one by one, each under its own key. A worker that dies after the
   claim leaves the rows `sending`; once the claim lapses, `dispatch.recover` settles
   them with the provider's log (campaigns.reconcile): `sent` if the provider took the
   message, `queued` again (the same batch key, all of the key's rows together, the
   artists still held) if it did not and the claim is recent enough for the provider to
   drop a repeat, otherwise `unknown`, which only staff can send again.

Limiter windows are kept per rate: campaigns running at the same rate (the default,
EMAIL_RATE_LIMIT, which the token refresh's notices use too) share one window.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from limits import RateLimitItem

from campaigns import audience, batching, claims, dispatch, messages, provider, rate
from campaigns.batching import Request
from campaigns.models import Recipient
from campaigns.provider import Answer, Outcome
from events import rate_limits

log = logging.getLogger(__name__)

# Longer than the send task's hard time limit: a live worker never outlasts its claim.
CLAIM_SECONDS = 120
MAX_ATTEMPTS = 6  # provider answers of 429/5xx before the row is marked failed
# A task hands what is left back to the queue after this long, well inside the send
# task's soft time limit even when its last request meets a provider timeout.
BATCH_SECONDS = 20.0
BACKOFF_CAP = 300.0  # seconds
SPLIT_ERROR = "the provider refused the batch whole; sent again one by one"
# Over the rate, a request whose slots free within this many seconds (it is early: the
# request a window before it went late, on a busy worker or beside the dispatch tick)
# waits for them in its task, right before it is written. Re-queuing the task instead
# would cost a broker round trip and a second run, and its slots would be taken that
# much after they freed: the request a window later inherits that lateness, and so on.
# Handing it back to the schedule leaves its place empty. Measured at 1000/s (requests
# of 100, 103.5 ms apart): re-queued, 94% of the rate; waiting up to 50 ms, 95.5-96.9%
# (requests 70-90 ms early were handed back, a 200-ms gap each); up to 0.2 s, 98.3-98.8%. A
# pool process waits at most this long a request. Any later, the rows go back to the
# schedule, as a task waiting longer would contend for the slots with the sends the
# schedule put there.
WAIT_AT_MOST = 0.2  # seconds

S = Recipient.Status


class Step(enum.StrEnum):
    NOTHING = "nothing"  # not ours to send (already claimed, finished, paused, gone)
    WAIT = "wait"  # over the rate: back to the schedule; its slots free in `wait` seconds
    SKIPPED = "skipped"
    SENT = "sent"
    RETRY = "retry"  # not sent (the provider or the limiter said so); queued again, backoff
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Result:
    step: Step
    wait: float = 0.0


def backoff(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: EMAIL_RETRY_BACKOFF (5 s by default), doubling."""
    base: int = settings.EMAIL_RETRY_BACKOFF
    delay: float = min(BACKOFF_CAP, base * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.5, 1.5)  # noqa: S311 (jitter, not security)


def send_batch(recipient_ids: list[int]) -> tuple[list[int], float]:
    """Send to these recipients, a request at a time. Returns the ones left and how long
    to wait for them: those of a request a little early for its slots (`WAIT_AT_MOST`)
    and after, or those the task had no time left for (`BATCH_SECONDS`). A request
    further over the rate hands its rows, and the rest, back to the schedule."""
    _, rest, wait = _send(recipient_ids)
    return rest, wait if rest else 0.0


def send_one(recipient_id: int) -> Result:
    """Send this recipient's email if it is still due (with any rows of its batch key);
    safe to call any number of times. Over the rate, `wait` says when slots free."""
    steps, _, wait = _send([recipient_id])
    step = steps.get(recipient_id, Step.NOTHING)
    return Result(step, wait if step is Step.WAIT else 0.0)


def _send(recipient_ids: list[int]) -> tuple[dict[int, Step], list[int], float]:
    started = time.monotonic()
    now = timezone.now()
    steps = dict.fromkeys(recipient_ids, Step.NOTHING)
    asked = set(recipient_ids)
    plan = batching.plan(recipient_ids, now)
    for reason, rows in plan.ineligible.items():
        _skip(rows, reason, S.QUEUED, steps, now)
    for i, request in enumerate(plan.requests):
        if time.monotonic() - started > BATCH_SECONDS:
            return steps, _asked_in(plan.requests[i:], asked), 0.0
        wait = _send_request(request, steps)
        if wait is None:
            continue
        if wait <= WAIT_AT_MOST:  # still a little early after waiting: re-queued for then
            waiting = _asked_in(plan.requests[i:], asked)
            steps.update(dict.fromkeys(waiting, Step.WAIT))
            return steps, waiting, wait
        _hand_back(plan.requests[i:], steps)
        return steps, [], wait
    return steps, [], 0.0


def _hand_back(requests: list[Request], steps: dict[int, Step]) -> None:
    """Over the rate: these rows go back to their campaign's schedule, which hands them
    out again at its next free place (campaigns.dispatch), instead of waiting for the
    slots to free and then contending for them with the sends the schedule put there."""
    rows = [row for request in requests for row in request.rows]
    handed_back = claims.update(rows, S.QUEUED, dispatched_at=None)
    steps.update(dict.fromkeys(handed_back, Step.WAIT))
    for campaign_id in {row.campaign_id for row in rows if row.pk in handed_back}:
        dispatch.kick(campaign_id)  # the standing campaign may have no chain


def _asked_in(requests: list[Request], asked: set[int]) -> list[int]:
    return [row.pk for request in requests for row in request.rows if row.pk in asked]


def _send_request(request: Request, steps: dict[int, Step]) -> float | None:
    """Claim, send and record one request; the seconds to wait when over the rate."""
    limit = request.campaign.rate
    if limit is not None and (wait := _over_the_rate(limit, len(request.rows))) > WAIT_AT_MOST:
        return wait
    try:
        message = _render(request)
    except Exception as exc:  # a broken template: nothing went out
        log.exception("could not render campaign email for recipients %s", _ids(request.rows))
        _fail(_claim(request, steps), f"rendering failed: {exc}", steps)
        return None
    before = {row.pk: (row.attempts, row.lapse_mark) for row in request.rows}
    claimed = _claim(request, steps)
    if not claimed:
        return None
    if len(claimed) < len(request.rows) and provider.can_batch():
        messages.keep_only(message, {row.email for row in claimed})
    slots = _Slots(limit, len(claimed)) if limit is not None else None
    answer = provider.send(message, before_request=slots)
    if answer.outcome is not Outcome.HELD:
        _record(claimed, message, answer, steps)
        return None
    assert slots is not None
    _unclaim(claimed, before)  # no request was made
    if slots.failure is not None:
        _limiter_failed(claimed, slots.failure, steps)
        return None
    return slots.wait


def _over_the_rate(limit: RateLimitItem, count: int) -> float:
    """How long the slots of a request of `count` would wait now; 0.0 when they would not,
    or when the limiter cannot tell (taking them, right before the request, says why)."""
    try:
        return rate.wait_for_slots(limit, count)
    except Exception:  # the limiter's failure is met, and handled, when the slots are taken
        return 0.0


def _render(request: Request) -> EmailMessage:
    campaign, rows = request.campaign, request.rows
    message: EmailMessage
    if provider.can_batch():
        members = [(row, row.artist) for row in rows if row.artist is not None]
        message = messages.build_batch(campaign, members, str(request.key))
    else:
        assert rows[0].artist is not None
        message = messages.build(campaign, rows[0].artist, rows[0])
    return message


class _Slots:
    """`send`'s hook: the request's slots of the rate, one a message, taken together
    right before it is written, waited for when they free within `WAIT_AT_MOST`; further
    over the rate (`wait`) or with the limiter failing (`failure`), the request is held."""

    def __init__(self, limit: RateLimitItem, count: int) -> None:
        self.limit, self.count = limit, count
        self.wait = 0.0
        self.failure: Exception | None = None

    def __call__(self) -> None:
        try:
            self.wait = rate_limits.waiting(
                lambda: rate.take_slots(self.limit, self.count), WAIT_AT_MOST
            )
        except Exception as exc:  # the soft time limit too: either way no request is made
            self.failure = exc
            raise provider.Held from exc
        if self.wait:
            raise provider.Held


def _claim(request: Request, steps: dict[int, Step]) -> list[Recipient]:
    """Own the rows for one attempt and hold their artists for this lapse, in one
    transaction.

    Returns the rows claimed and held, which carry the claim in memory (attempt number,
    address, mark, batch key); rows another process had are left out, rows whose
    artist another notice holds are skipped.
    """
    campaign, rows = request.campaign, request.rows
    now = timezone.now()
    marks = [now if campaign.include_notified else (row.lapse_mark or now) for row in rows]
    emails = [batching.address(row) for row in rows]
    with transaction.atomic():
        won_ids = claims.claim(
            rows,
            emails=emails,
            marks=marks,
            key=request.key,
            now=now,
            lasting=timedelta(seconds=CLAIM_SECONDS),
        )
        won = [
            (row, e, m) for row, e, m in zip(rows, emails, marks, strict=True) if row.pk in won_ids
        ]
        held_profiles = audience.take_lapse_marks(
            [(row.artist_id, row.lapse_mark, mark) for row, _, mark in won if row.artist_id],
            take_any=campaign.include_notified,
        )
        for row, email, mark in won:
            row.attempts += 1
            row.email, row.lapse_mark, row.batch_key = email, mark, request.key
            row.status = S.SENDING
        notified = [row for row, _, _ in won if row.artist_id not in held_profiles]
        for row in notified:
            row.lapse_mark = None  # the mark is another notice's
        _skip(notified, audience.SKIP_NOTIFIED, S.SENDING, steps, now)
    return [row for row, _, _ in won if row.artist_id in held_profiles]


def _unclaim(rows: list[Recipient], before: dict[int, tuple[int, datetime | None]]) -> None:
    """Undo a claim whose request was never made: each row `queued` again at its attempt
    number and with the lapse mark it had, the artists' marks as they were. The rows
    keep their batch key."""
    by_mark: dict[datetime | None, list[Recipient]] = defaultdict(list)
    for row in rows:
        by_mark[before[row.pk][1]].append(row)
    with transaction.atomic():
        for mark, same in by_mark.items():
            claims.update(
                same,
                S.SENDING,
                status=S.QUEUED,
                attempts=F("attempts") - 1,
                lapse_mark=mark,
                claimed_until=None,
            )
        audience.restore_lapse_marks(
            [(row.artist_id, row.lapse_mark, before[row.pk][1]) for row in rows]
        )
    for row in rows:
        row.attempts, row.lapse_mark = before[row.pk]
        row.status = S.QUEUED


def _ids(rows: list[Recipient]) -> str:
    return ", ".join(str(row.pk) for row in rows[:10]) + (" ..." if len(rows) > 10 else "")


def _limiter_failed(rows: list[Recipient], exc: Exception, steps: dict[int, Step]) -> None:
    """No slot could be taken, so nothing was sent and the rows were never claimed: they
    are due again after a backoff, with no attempt counted (those count the provider's
    refusals; a limiter down for minutes must not use them up)."""
    now = timezone.now()
    error = f"rate limiter unavailable, nothing sent: {type(exc).__name__}"
    deferred = claims.update(
        rows,
        S.QUEUED,
        next_attempt_at=now + timedelta(seconds=backoff(1)),
        last_error=error,
        dispatched_at=None,
        updated_at=now,
    )
    log.warning("campaign recipients %s: %s", _ids(rows), error)
    steps.update(dict.fromkeys(deferred, Step.RETRY))
    if deferred:
        dispatch.kick(rows[0].campaign_id)  # the standing campaign may have no chain


def _skip(
    rows: list[Recipient], reason: str, status: str, steps: dict[int, Step], now: datetime
) -> None:
    with transaction.atomic():
        skipped = claims.update(
            rows,
            status,
            status=S.SKIPPED,
            last_error=reason,
            lapse_mark=None,
            claimed_until=None,
            updated_at=now,
        )
        audience.release_lapse_marks(
            [(row.artist_id, row.lapse_mark) for row in rows if row.pk in skipped]
        )
    for row in rows:
        if row.pk in skipped:
            row.status = S.SKIPPED
            steps[row.pk] = Step.SKIPPED


def _record(
    rows: list[Recipient], message: EmailMessage, answer: Answer, steps: dict[int, Step]
) -> None:
    """Store what the provider answered, on this claim only."""
    now = timezone.now()
    if answer.outcome is Outcome.SENT:
        answers = provider.recipient_answers(message, answer)
        sent = [row for row in rows if answers.get(row.email, answer).outcome is Outcome.SENT]
        claims.record_sent(sent, [answers.get(row.email, answer).message_id for row in sent], now)
        steps.update(dict.fromkeys(_pks(sent), Step.SENT))
        for row in rows:
            refused = answers.get(row.email, answer)
            if refused.outcome is not Outcome.SENT:
                _fail([row], refused.error, steps)
        return
    if answer.outcome is Outcome.RETRY:
        _retry([row for row in rows if row.attempts < MAX_ATTEMPTS], answer, steps, now)
        _fail([row for row in rows if row.attempts >= MAX_ATTEMPTS], answer.error, steps)
        return
    if answer.outcome is Outcome.UNKNOWN:
        marked = claims.update(
            rows, S.SENDING, status=S.UNKNOWN, last_error=answer.error[:300], claimed_until=None
        )
        steps.update(dict.fromkeys(marked, Step.UNKNOWN))
        log.warning("campaign recipients %s: outcome unknown (%s)", _ids(rows), answer.error)
        return
    if len(rows) > 1 and all(row.attempts == 1 for row in rows):
        # The first request under this key, refused whole: it made no message.
        split = claims.update(
            rows,
            S.SENDING,
            status=S.QUEUED,
            batch_key=F("idempotency_key"),
            next_attempt_at=None,
            last_error=f"{SPLIT_ERROR}: {answer.error}"[:300],
            claimed_until=None,
            updated_at=now,
        )
        steps.update(dict.fromkeys(split, Step.RETRY))
        dispatch.kick(rows[0].campaign_id)
        return
    _fail(rows, answer.error, steps)


def _pks(rows: list[Recipient]) -> list[int]:
    return [row.pk for row in rows]


def _retry(rows: list[Recipient], answer: Answer, steps: dict[int, Step], now: datetime) -> None:
    """Not sent: queued again together, after one backoff for the whole request."""
    if not rows:
        return
    delay = max(answer.retry_after or 0.0, backoff(max(row.attempts for row in rows)))
    queued = claims.update(
        rows,
        S.SENDING,
        status=S.QUEUED,
        next_attempt_at=now + timedelta(seconds=delay),
        last_error=answer.error[:300],
        claimed_until=None,
        updated_at=now,
    )
    steps.update(dict.fromkeys(queued, Step.RETRY))
    dispatch.kick(rows[0].campaign_id)  # the standing campaign may have no chain


def _fail(rows: list[Recipient], error: str, steps: dict[int, Step]) -> None:
    with transaction.atomic():
        failed = claims.update(
            rows,
            S.SENDING,
            status=S.FAILED,
            last_error=error[:300],
            lapse_mark=None,
            claimed_until=None,
            updated_at=timezone.now(),
        )
        audience.release_lapse_marks(
            [(row.artist_id, row.lapse_mark) for row in rows if row.pk in failed]
        )
    steps.update(dict.fromkeys(failed, Step.FAILED))
