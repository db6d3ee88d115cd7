"""Refreshing one artist's SumUp tokens, safely across any number of workers.

The protocol, for one artist:
1. claim the row with a conditional UPDATE (nobody else holds an unexpired claim), so
   only one process calls SumUp for this grant at a time; an answer left in the refresh
   journal (below) is applied first;
2. take a slot of the global SumUp API budget (queued work: of its bulk share, having
   booked a paced slot before this, `book_budget_slot`), waiting for it where it frees
   within `BUDGET_WAIT_AT_MOST`, or give the claim back and wait;
3. call the token endpoint with the refresh token held at claim time;
4. once SumUp answers, keep the answer before anything else can fail: journal it
   (`refresh_journal`, in Redis), then store it in the row with compare-and-swap on the
   token version alone, whether or not the claim is still held: no one wrote since the
   claim, so the answer is the newest, and a rotated refresh token must not be dropped.
   A worker that finds the version moved on (someone stored a newer token) drops its
   answer; it never overwrites a newer token.
On `invalid_grant` the journal is applied and the row read again first: a token that
changed since the claim means another worker won a race, not that the artist revoked
access.

The window that remains: SumUp has rotated the refresh token and its answer is still on
the network (or in the worker, not yet journaled: microseconds) when the worker dies.
Nothing on our side holds the new token, and the row's one is spent. It is not silent:
the first sweep after the dead worker's claim lapses (`CLAIM_SECONDS`) refreshes the
artist again, SumUp refuses the spent token (`invalid_grant`), the connection is marked
expired and the artist is emailed to reconnect (`refresh_alerts.ask_to_reconnect`).
"""

from __future__ import annotations

import enum
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Case, DateTimeField, F, Q, QuerySet, Value, When
from django.utils import timezone
from limits import RateLimitItem

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup import client, refresh_alerts, refresh_journal
from accounts.sumup.client import SumUpError
from accounts.sumup.connection import cleared_connection, token_changes
from events import rate_limits

log = logging.getLogger(__name__)

CLAIM_SECONDS = 60  # longer than a token call with its timeouts; a dead worker's claim lapses
REFRESHABLE = (ConnectionStatus.CONNECTED, ConnectionStatus.ERROR)
API_RULE = "sumup-api"  # the global budget of calls to SumUp (events.rate_limits)
OVER_BUDGET_SPREAD = 1.0  # seconds, at most, added at random to an over-budget wait
# A refresh whose slot of the budget frees within this many seconds waits for it (it ran
# a little late for its paced slot, behind others in its worker, and met the refreshes
# of the next slots): refused, it would go back to the queue and come back later still.
# Paced slots are 56 ms apart at the default budget; a machine busy with other work ran
# refreshes up to 84-366 ms late (p99), and refused 16-120 of them in 90 s of steady
# state (bench/refresh_scale_bench.py) before they waited.
BUDGET_WAIT_AT_MOST = 0.2
JOURNALED_RETRY = 2.0  # seconds: an answer the database refused is tried again this soon
# The sweep stores only journaled answers at least this old: a live worker stores its own
# within milliseconds of journaling it (or, refused by the database, comes back for it
# after JOURNALED_RETRY); applied under it, the worker's store would find the row moved
# on and both would warn of a race that never was.
JOURNAL_SETTLE_SECONDS = 5.0


class Outcome(enum.StrEnum):
    REFRESHED = "refreshed"
    NOT_DUE = "not_due"  # already fresh, not connected, or another worker holds it
    LOST_RACE = "lost_race"
    EXPIRED = "expired"  # the grant is dead: the artist must reconnect
    ERROR = "error"  # SumUp refused for another reason: staff should look
    RETRY = "retry"  # transient: try again after `retry_after` (or backoff)
    OVER_BUDGET = "over_budget"  # the global API budget is spent: try again after it
    HALTED = "halted"  # our client credentials are refused: stop everything


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    retry_after: float | None = None
    error: str = ""
    failures: int = 0  # RETRY: transient failures in a row, this one included


def _budget() -> RateLimitItem:
    return rate_limits.parse_rate(settings.SUMUP_API_RATE_LIMIT, setting="SUMUP_API_RATE_LIMIT")


def book_budget_slot(*, within: float, lead: float = 0.0) -> rate_limits.Slot:
    """For queued refreshes: book the next paced slot of the SumUp budget (see
    events.rate_limits), so a sweep's refreshes reach SumUp evenly spaced."""
    return rate_limits.reserve(API_RULE, _budget(), within=within, lead=lead)


def book_budget_slots(count: int, *, within: float, lead: float) -> list[float]:
    """Book up to `count` paced slots of the SumUp budget at once; their waits, in order."""
    return rate_limits.reserve_many(API_RULE, _budget(), within=within, count=count, lead=lead)


def free_budget_slots(*, within: float, lead: float) -> int:
    """Paced slots of the SumUp budget free within `within` seconds, none booked."""
    return rate_limits.free_slots(API_RULE, _budget(), within=within, lead=lead)


def paced_interval() -> float:
    """Seconds between two paced slots of the SumUp budget for queued refreshes."""
    return rate_limits.interval(_budget())


def due_profiles(now: Any = None) -> QuerySet[ArtistProfile]:
    """Working connections whose next refresh has come (accounts.sumup.refresh_policy):
    the conditions of the partial index `artistprofile_sumup_next_idx`, so reading them
    reads only due rows."""
    return _refreshable().filter(sumup_refresh_due_at__lte=now or timezone.now())


def _refreshable() -> QuerySet[ArtistProfile]:
    return ArtistProfile.objects.filter(
        sumup_connection_status__in=REFRESHABLE, sumup_refresh_token__isnull=False
    )


# What a refresh reads of the row it claimed: the grant, the version its compare-and-swap
# checks, and what `token_changes` compares the answer with. Loading only these spares
# decrypting the access token, which the refresh replaces unread.
CLAIMED_FIELDS = (
    "sumup_refresh_token",
    "sumup_token_version",
    "sumup_connected_at",
    "sumup_merchant_code",
    "sumup_connection_status",
    "sumup_refresh_token_issued_at",
    "sumup_token_used_at",
)


def _claim(profile_id: int, *, only_if_due: bool) -> tuple[str, ArtistProfile] | None:
    apply_journal(profile_id)
    now = timezone.now()
    candidates = due_profiles(now) if only_if_due else _refreshable()
    claim = uuid.uuid4().hex
    claimed = (
        candidates.filter(pk=profile_id)
        .filter(
            Q(sumup_refresh_claimed_until__isnull=True)
            | Q(sumup_refresh_claimed_until__lt=now)
            # No claim, only a time: a retry's backoff (`defer`), which paces queued
            # work but never holds a refresh asked for now.
            | Q(sumup_refresh_claim="")
        )
        .update(
            sumup_refresh_claim=claim,
            sumup_refresh_claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
        )
    )
    if not claimed:
        return None
    return claim, ArtistProfile.objects.only(*CLAIMED_FIELDS).get(pk=profile_id)


def _release(profile_id: int, claim: str, **changes: Any) -> int:
    return ArtistProfile.objects.filter(pk=profile_id, sumup_refresh_claim=claim).update(
        sumup_refresh_claim="", sumup_refresh_claimed_until=None, **changes
    )


def refresh_profile(
    profile_id: int,
    *,
    only_if_due: bool = True,
    bulk: bool = False,
) -> Result:
    """Refresh one artist's tokens now, if no one else is. Safe to call twice.

    By default only a due connection is refreshed (see `due_profiles`); `only_if_due=False`
    refreshes any working connection. `bulk` (the sweep's queued refreshes) takes the
    SumUp budget's bulk share, leaving room for on-demand refreshes.
    """
    claimed = _claim(profile_id, only_if_due=only_if_due)
    if claimed is None:
        return Result(Outcome.NOT_DUE)
    claim, profile = claimed
    budget = _budget()
    wait = rate_limits.waiting(
        lambda: rate_limits.acquire(API_RULE, budget, bulk=bulk), BUDGET_WAIT_AT_MOST
    )
    if wait:
        _release(profile_id, claim)
        # Refused together, waiters would all come back as the one slot frees; spread
        # over a pacing interval (at most a second), most find one.
        spread_over = min(rate_limits.interval(budget), OVER_BUDGET_SPREAD)
        spread = random.uniform(0, spread_over)  # noqa: S311 (jitter, not security)
        return Result(Outcome.OVER_BUDGET, retry_after=wait + spread)
    refresh_token = profile.sumup_refresh_token or ""
    try:
        token = client.refresh(refresh_token=refresh_token)
    except SumUpError as exc:
        return _failed(profile, claim, exc)
    return _keep_answer(profile, claim, token)


def _keep_answer(profile: ArtistProfile, claim: str, answer: dict[str, Any]) -> Result:
    """SumUp has answered: journal the answer, store it, then forget the journal entry."""
    received_at = time.time()
    entry = refresh_journal.record(
        profile.pk,
        version=profile.sumup_token_version,
        claim=claim,
        answer=answer,
        received_at=received_at,
    )
    try:
        stored = _store(profile, claim, answer, received_at)
    except DatabaseError:
        if entry is None:
            raise
        log.warning(
            "SumUp refresh for artist profile %s: the database did not take the answer; "
            "it stays in the refresh journal until it does",
            profile.pk,
        )
        return Result(Outcome.RETRY, retry_after=JOURNALED_RETRY, error="database")
    if entry is not None:
        refresh_journal.forget(profile.pk, entry)
    if not stored:
        log.warning(
            "SumUp refresh for artist profile %s answered after a newer token was stored; "
            "the newer one is kept",
            profile.pk,
        )
        return Result(Outcome.LOST_RACE)
    refresh_alerts.clear_halt()
    return Result(Outcome.REFRESHED)


def _store(profile: ArtistProfile, claim: str, answer: dict[str, Any], received_at: float) -> bool:
    """Write SumUp's answer to the row it was asked for, whoever holds the claim now.

    The version alone decides: unchanged since the claim, nothing newer was stored, and
    this answer is the grant's newest. The claim is released if it is still `claim` (or
    only a backoff mark); a claim someone took after `claim` lapsed stays theirs: their
    refresh finds the version moved on."""
    at = datetime.fromtimestamp(received_at, tz=UTC)
    ours = Q(sumup_refresh_claim=claim) | Q(sumup_refresh_claim="")
    changes = token_changes(profile, answer, at)
    changes.update(
        sumup_last_refresh_at=at,
        sumup_refresh_claim=Case(When(ours, then=Value("")), default=F("sumup_refresh_claim")),
        sumup_refresh_claimed_until=Case(
            When(ours, then=Value(None)),
            default=F("sumup_refresh_claimed_until"),
            output_field=DateTimeField(),
        ),
        sumup_refresh_enqueued_at=None,
    )
    return bool(
        ArtistProfile.objects.filter(
            pk=profile.pk, sumup_token_version=profile.sumup_token_version
        ).update(**changes)
    )


def apply_journal(profile_id: int) -> bool:
    """Store an answer a worker journaled but did not store (it died, or the database was
    away); drop it if the row has moved on. True if it was stored."""
    entry = refresh_journal.pending(profile_id)
    return entry is not None and _apply_entry(profile_id, entry)


def apply_journals() -> int:
    """`apply_journal` for every artist whose journaled answer is older than
    `JOURNAL_SETTLE_SECONDS` (its worker died, or the database was away); how many were
    stored."""
    settled = time.time() - JOURNAL_SETTLE_SECONDS
    pending = refresh_journal.all_pending().items()
    return sum(_apply_entry(pk, entry) for pk, entry in pending if entry.received_at <= settled)


def _apply_entry(profile_id: int, entry: refresh_journal.Entry) -> bool:
    profile = (
        ArtistProfile.objects.only(*CLAIMED_FIELDS)
        .filter(pk=profile_id, sumup_token_version=entry.version)
        .first()
    )
    stored = profile is not None and _store(profile, entry.claim, entry.answer, entry.received_at)
    refresh_journal.forget(profile_id, entry)
    if stored:
        log.warning(
            "SumUp refresh for artist profile %s: stored the answer its worker journaled "
            "but did not store",
            profile_id,
        )
    return stored


def _failed(profile: ArtistProfile, claim: str, exc: SumUpError) -> Result:
    if exc.code == "invalid_client":
        _release(profile.pk, claim)
        refresh_alerts.halt(str(exc))
        return Result(Outcome.HALTED, error=exc.code)
    if exc.code == "invalid_grant":
        return _grant_refused(profile, claim, exc)
    if exc.permanent:
        log.warning("SumUp refresh for artist profile %s refused: %s", profile.pk, exc)
        _release(
            profile.pk,
            claim,
            sumup_connection_status=ConnectionStatus.ERROR,
            sumup_last_error=str(exc)[:200],
            sumup_refresh_failures=F("sumup_refresh_failures") + 1,
            sumup_refresh_enqueued_at=None,
            sumup_refresh_due_at=retry_in_error(),
        )
        return Result(Outcome.ERROR, error=exc.code)
    _release(
        profile.pk,
        claim,
        sumup_last_error=str(exc)[:200],
        sumup_refresh_failures=F("sumup_refresh_failures") + 1,
    )
    failures = (
        ArtistProfile.objects.filter(pk=profile.pk)
        .values_list("sumup_refresh_failures", flat=True)
        .first()
    )
    return Result(
        Outcome.RETRY, retry_after=exc.retry_after, error=exc.code, failures=failures or 1
    )


def _grant_refused(profile: ArtistProfile, claim: str, exc: SumUpError) -> Result:
    # A worker whose claim lapsed may have had this token rotated and journaled the answer.
    apply_journal(profile.pk)
    current = ArtistProfile.objects.get(pk=profile.pk)
    if current.sumup_token_version != profile.sumup_token_version:
        _release(profile.pk, claim)
        return Result(Outcome.LOST_RACE, error=exc.code)
    changes = cleared_connection(current, ConnectionStatus.EXPIRED)
    changes["sumup_last_error"] = str(exc)[:200]
    expired = ArtistProfile.objects.filter(
        pk=profile.pk, sumup_refresh_claim=claim, sumup_token_version=profile.sumup_token_version
    ).update(**changes)
    if not expired:
        return Result(Outcome.LOST_RACE, error=exc.code)
    log.info("SumUp grant of artist profile %s is dead; marked expired", profile.pk)
    refresh_alerts.ask_to_reconnect(profile.pk)
    return Result(Outcome.EXPIRED, error=exc.code)


def retry_in_error() -> datetime:
    """The next refresh of a connection in error: at the next sweep, not at once, so a
    refusal that lasts costs one call a sweep, not a stream of them."""
    return timezone.now() + timedelta(seconds=settings.SUMUP_REFRESH_SWEEP_INTERVAL)


def give_up(profile_id: int, error: str) -> None:
    """Transient failures outlasted every retry: show staff, let later sweeps try again."""
    ArtistProfile.objects.filter(pk=profile_id, sumup_connection_status__in=REFRESHABLE).update(
        sumup_connection_status=ConnectionStatus.ERROR,
        sumup_last_error=error[:200],
        sumup_refresh_enqueued_at=None,
        sumup_refresh_due_at=retry_in_error(),
    )


def defer(profile_id: int, seconds: float) -> None:
    """Try again in `seconds`: a time in the row, not a countdown held by a worker.
    Queued work leaves the artist alone until then (`sumup_refresh_claimed_until` with no
    claim); the dispatcher or a sweep queues it once the time has passed."""
    ArtistProfile.objects.filter(pk=profile_id, sumup_refresh_claim="").update(
        sumup_refresh_claimed_until=timezone.now() + timedelta(seconds=seconds),
        sumup_refresh_enqueued_at=None,
    )


def backing_off(now: Any) -> QuerySet[ArtistProfile]:
    """Due artists waiting out a retry's backoff (`defer`): a time, no claim."""
    return due_profiles(now).filter(sumup_refresh_claim="", sumup_refresh_claimed_until__gt=now)


def finished(profile_id: int) -> None:
    """The queued refresh work for this artist is over, whatever its outcome."""
    ArtistProfile.objects.filter(pk=profile_id).update(sumup_refresh_enqueued_at=None)
