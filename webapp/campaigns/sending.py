"""Sending one recipient's email, at most once, across any number of workers.

The protocol, for one recipient row:
1. read it: only a `queued` row of a running campaign, due for its next attempt, is
   worked on; an artist who is no longer eligible is marked `skipped` here;
2. render the message;
3. claim it, in one transaction: `UPDATE ... SET status='sending', attempts=attempts+1
   WHERE id=%s AND status='queued' AND attempts=<as read>`; exactly one process wins,
   and a redelivered or duplicated task finds the row claimed, sent or finished and
   stops. Then the artist is held for this lapse (campaigns.audience), or the row is
   skipped. Last, before the commit, a slot of the global email rate is taken
   (campaigns.rate, at the campaign's rate), so that only the commit lies between the
   slot and the request. Without a slot the transaction rolls back and the row is as
   it was: over the rate the task re-queues itself for when a slot frees, the row
   untouched but for its hand-out time; a limiter that fails (its Redis gone) leaves
   the row queued, due again after a backoff that uses none of its attempts, and the
   dispatcher hands it out once due. A committed claim means "the request is being
   made": a worker that dies before the commit made none, and its row is simply handed
   out again;
4. call the provider (campaigns.provider) and record its answer with an UPDATE that
   names the claim (the attempt number): `sent` with the message id; `queued` again
   with a backoff; `failed`; or `unknown`, kept for a request that may have reached the
   provider. A worker that dies after the claim leaves the row `sending`; once the
   claim lapses, `dispatch.recover` settles it with the provider's log
   (campaigns.reconcile): `sent` if the provider took the message, `queued` again
   (the same idempotency key, the artist still held) if it did not and the claim is
   recent enough for the provider to drop a repeat, otherwise `unknown`, which only
   staff can send again.

Limiter windows are kept per rate: campaigns running at the same rate (the default,
EMAIL_RATE_LIMIT, which the token refresh's notices use too) share one window.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from limits import RateLimitItem

from accounts.models import ArtistProfile
from campaigns import audience, dispatch, messages, provider, rate
from campaigns.models import Campaign, Recipient
from campaigns.provider import Answer, Outcome

log = logging.getLogger(__name__)

# Longer than the send task's hard time limit: a live worker never outlasts its claim.
CLAIM_SECONDS = 120
MAX_ATTEMPTS = 6  # provider answers of 429/5xx before the row is marked failed
# A batch hands what is left back to the queue after this long, well inside the send
# task's soft time limit even when its last message meets a provider timeout.
BATCH_SECONDS = 20.0
BACKOFF_CAP = 300.0  # seconds
# Seconds added to a wait for a slot: waiters spread out instead of all arriving as the
# slot frees, and a slot taken after a wait never sits right on a window's edge.
WAIT_JITTER = (0.02, 0.06)


class Step(enum.StrEnum):
    NOTHING = "nothing"  # not ours to send (already claimed, finished, paused, gone)
    WAIT = "wait"  # over the rate: try again after `wait` seconds
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
    """Send to these recipients in turn. Returns the ones left and how long to wait for
    them: all from the first that must wait for a slot of the rate, or those the batch
    had no time left for (`BATCH_SECONDS`)."""
    started = time.monotonic()
    for i, recipient_id in enumerate(recipient_ids):
        if time.monotonic() - started > BATCH_SECONDS:
            return recipient_ids[i:], 0.0
        result = send_one(recipient_id)
        if result.step is Step.WAIT:
            return recipient_ids[i:], result.wait
    return [], 0.0


def send_one(recipient_id: int) -> Result:
    """Send this recipient's email if it is still due; safe to call any number of times."""
    recipient = (
        Recipient.objects.select_related("campaign", "artist__user")
        .annotate(address_suppressed=audience.suppressed("artist__user__email"))
        .filter(pk=recipient_id)
        .first()
    )
    now = timezone.now()
    if recipient is None or recipient.status != Recipient.Status.QUEUED:
        return Result(Step.NOTHING)
    campaign = recipient.campaign
    if campaign.status != Campaign.Status.RUNNING:
        return Result(Step.NOTHING)  # paused or cancelled: resume hands it out again
    if recipient.next_attempt_at is not None and recipient.next_attempt_at > now:
        return Result(Step.NOTHING)  # a stray copy; the dispatcher hands it out when due
    profile = recipient.artist
    reason = audience.ineligible_reason(
        campaign, profile, suppressed=bool(getattr(recipient, "address_suppressed", False))
    )
    if reason:
        _skip(recipient, reason, claimed=False)
        return Result(Step.SKIPPED)
    assert profile is not None
    try:
        message = messages.build(campaign, profile, recipient)
    except Exception as exc:  # a broken template: nothing went out
        log.exception("could not render campaign email for recipient %s", recipient.pk)
        if not _claim(recipient, campaign, profile):
            return _lost_claim(recipient)
        return _record(recipient, Answer(Outcome.FAILED, error=f"rendering failed: {exc}"))
    try:
        claimed = _claim(recipient, campaign, profile, slot_of=campaign.rate)
    except _NoSlot as refused:  # the claim was rolled back: no request was made
        if refused.failure is not None:
            return _limiter_failed(recipient, refused.failure)
        _still_handed_out(recipient)
        return Result(Step.WAIT, refused.wait + random.uniform(*WAIT_JITTER))  # noqa: S311
    if not claimed:
        return _lost_claim(recipient)
    return _record(recipient, provider.send(message))


def _lost_claim(recipient: Recipient) -> Result:
    """Another process had the row, or the artist was held elsewhere (now skipped)."""
    return Result(Step.NOTHING if recipient.status == Recipient.Status.QUEUED else Step.SKIPPED)


class _NoSlot(Exception):
    """No slot of the rate for this send: over it (`wait`), or the limiter `failure`."""

    def __init__(self, wait: float = 0.0, failure: Exception | None = None) -> None:
        super().__init__(wait, failure)
        self.wait, self.failure = wait, failure


def _claim(
    recipient: Recipient,
    campaign: Campaign,
    profile: ArtistProfile,
    *,
    slot_of: RateLimitItem | None = None,
) -> bool:
    """Own the row for one attempt, hold the artist for this lapse and, under a rate
    (`slot_of`), take a slot of it last, all in one transaction.

    On success `recipient` carries the claim (attempt number, mark); when the artist is
    held by another notice the row is skipped, no slot taken, and `recipient.status`
    says so. Without a slot, `_NoSlot` is raised and the transaction rolls back.
    """
    now = timezone.now()
    mark = now if campaign.include_notified else (recipient.lapse_mark or now)
    with transaction.atomic():
        won = Recipient.objects.filter(
            pk=recipient.pk, status=Recipient.Status.QUEUED, attempts=recipient.attempts
        ).update(
            status=Recipient.Status.SENDING,
            attempts=F("attempts") + 1,
            email=profile.user.email,
            lapse_mark=mark,
            claimed_at=now,
            claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
            dispatched_at=None,
            updated_at=now,
        )
        if not won:
            return False
        held = audience.take_lapse_mark(
            profile.pk, held=recipient.lapse_mark, mark=mark, take_any=campaign.include_notified
        )
        if held and slot_of is not None:
            try:
                wait = rate.take_slot(slot_of)
            except Exception as exc:  # the soft time limit too: either way no request was made
                raise _NoSlot(failure=exc) from exc
            if wait:
                raise _NoSlot(wait)
        recipient.attempts += 1
        recipient.email, recipient.lapse_mark = profile.user.email, mark
        recipient.status = Recipient.Status.SENDING
        if not held:
            recipient.lapse_mark = None
            _skip(recipient, audience.SKIP_NOTIFIED, claimed=True)
            return False
    return True


def _still_handed_out(recipient: Recipient) -> None:
    """Over the rate: the re-queued task still holds the row, so the dispatcher must not
    hand it out again as lost (`CAMPAIGNS_REDISPATCH_AFTER` counts from here)."""
    Recipient.objects.filter(
        pk=recipient.pk, status=Recipient.Status.QUEUED, attempts=recipient.attempts
    ).update(dispatched_at=timezone.now())


def _limiter_failed(recipient: Recipient, exc: Exception) -> Result:
    """No slot could be taken, so nothing was sent and the row was never claimed: it is
    due again after a backoff, with no attempt counted (those count the provider's
    refusals; a limiter down for minutes must not use them up)."""
    now = timezone.now()
    error = f"rate limiter unavailable, nothing sent: {type(exc).__name__}"
    deferred = Recipient.objects.filter(
        pk=recipient.pk, status=Recipient.Status.QUEUED, attempts=recipient.attempts
    ).update(
        next_attempt_at=now + timedelta(seconds=backoff(1)),
        last_error=error,
        dispatched_at=None,
        updated_at=now,
    )
    log.warning("campaign recipient %s: %s", recipient.pk, error)
    if deferred:
        dispatch.kick(recipient.campaign_id)  # the standing campaign may have no chain
    return Result(Step.RETRY)


def _skip(recipient: Recipient, reason: str, *, claimed: bool) -> None:
    expected = Recipient.Status.SENDING if claimed else Recipient.Status.QUEUED
    with transaction.atomic():
        skipped = Recipient.objects.filter(
            pk=recipient.pk, status=expected, attempts=recipient.attempts
        ).update(
            status=Recipient.Status.SKIPPED,
            last_error=reason,
            lapse_mark=None,
            claimed_until=None,
            updated_at=timezone.now(),
        )
        if skipped:
            recipient.status = Recipient.Status.SKIPPED
            audience.release_lapse_mark(recipient.artist_id, recipient.lapse_mark)


def _record(recipient: Recipient, answer: Answer) -> Result:
    """Store what the provider answered, on this claim only."""
    now = timezone.now()
    mine = Recipient.objects.filter(pk=recipient.pk, attempts=recipient.attempts)
    if answer.outcome is Outcome.SENT:
        # `unknown` too: recovery may have given up on a claim that then succeeded.
        mine.filter(status__in=[Recipient.Status.SENDING, Recipient.Status.UNKNOWN]).update(
            status=Recipient.Status.SENT,
            message_id=answer.message_id[:255],
            sent_at=now,
            last_error="",
            claimed_until=None,
            updated_at=now,
        )
        return Result(Step.SENT)
    mine = mine.filter(status=Recipient.Status.SENDING)
    if answer.outcome is Outcome.RETRY and recipient.attempts < MAX_ATTEMPTS:
        delay = max(answer.retry_after or 0.0, backoff(recipient.attempts))
        mine.update(
            status=Recipient.Status.QUEUED,
            next_attempt_at=now + timedelta(seconds=delay),
            last_error=answer.error[:300],
            claimed_until=None,
            updated_at=now,
        )
        dispatch.kick(recipient.campaign_id)  # the standing campaign may have no chain
        return Result(Step.RETRY)
    if answer.outcome is Outcome.UNKNOWN:
        mine.update(
            status=Recipient.Status.UNKNOWN,
            last_error=answer.error[:300],
            claimed_until=None,
            updated_at=now,
        )
        log.warning("campaign recipient %s: outcome unknown (%s)", recipient.pk, answer.error)
        return Result(Step.UNKNOWN)
    with transaction.atomic():
        failed = mine.update(
            status=Recipient.Status.FAILED,
            last_error=answer.error[:300],
            lapse_mark=None,
            claimed_until=None,
            updated_at=now,
        )
        if failed:
            audience.release_lapse_mark(recipient.artist_id, recipient.lapse_mark)
    return Result(Step.FAILED)
