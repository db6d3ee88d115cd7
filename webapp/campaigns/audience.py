"""Who a campaign emails: chosen when it starts, and checked again just before each send.

An artist is emailed about reconnecting SumUp at most once per lapse. The mark is the
profile's `sumup_lapse_notified_at`, which connecting clears: whoever sets it from NULL
with a conditional UPDATE (a campaign send, or the refresh machinery's notice) holds
the artist for this lapse, and every other notice skips them until they reconnect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Lower

from accounts.models import ArtistProfile
from accounts.sumup.connection import NEEDS_CONNECTION
from campaigns.models import Campaign, Suppression
from campaigns.reconnect_notice import audience as reconnect_audience

SKIP_SUPPRESSED = "suppressed: the address unsubscribed, bounced or complained"
SKIP_NOTIFIED = "already notified since the artist was last disconnected"
SKIP_CONNECTED = "connected SumUp before the send"
SKIP_INACTIVE = "the account is inactive or has no email address"
SKIP_UNAPPROVED = "the profile is no longer approved"
SKIP_GONE = "the artist profile was deleted"


@dataclass(frozen=True)
class AudienceCount:
    eligible: int
    suppressed: int
    already_notified: int


def is_suppressed(email: str) -> bool:
    return Suppression.objects.filter(email=email.strip().lower()).exists()


def suppressed(email_field: str = "user__email") -> Exists:
    """True for a row whose address is on the suppression list (in a filter)."""
    return Exists(Suppression.objects.filter(email=Lower(OuterRef(email_field))))


def candidates(*, approved_only: bool) -> QuerySet[ArtistProfile]:
    """Artists who must connect SumUp, each annotated `suppressed`."""
    return reconnect_audience(approved_only=approved_only).annotate(suppressed=suppressed())


def sendable(*, approved_only: bool, include_notified: bool) -> QuerySet[ArtistProfile]:
    """The candidates a campaign would queue (not suppressed, not already notified)."""
    people = reconnect_audience(approved_only=approved_only).exclude(suppressed())
    return people if include_notified else people.filter(sumup_lapse_notified_at__isnull=True)


def skip_reason_at_start(profile: ArtistProfile, *, include_notified: bool) -> str:
    """Why a candidate from `candidates()` is listed as skipped rather than queued."""
    if getattr(profile, "suppressed", False):
        return SKIP_SUPPRESSED
    if profile.sumup_lapse_notified_at is not None and not include_notified:
        return SKIP_NOTIFIED
    return ""


def count(*, approved_only: bool, include_notified: bool) -> AudienceCount:
    people = reconnect_audience(approved_only=approved_only)
    blocked = people.filter(suppressed()).count()
    notified = (
        0
        if include_notified
        else people.exclude(suppressed()).filter(sumup_lapse_notified_at__isnull=False).count()
    )
    return AudienceCount(
        eligible=people.count() - blocked - notified,
        suppressed=blocked,
        already_notified=notified,
    )


def ineligible_reason(
    campaign: Campaign, profile: ArtistProfile | None, *, suppressed: bool | None = None
) -> str:
    """Why this artist must not be emailed now ("" when they may be); `suppressed`, when
    the caller already knows it, saves a query."""
    if profile is None:
        return SKIP_GONE
    if not profile.user.is_active or not profile.user.email:
        return SKIP_INACTIVE
    if profile.sumup_connection_status not in NEEDS_CONNECTION:
        return SKIP_CONNECTED
    if campaign.approved_only and not profile.is_approved:
        return SKIP_UNAPPROVED
    if suppressed if suppressed is not None else is_suppressed(profile.user.email):
        return SKIP_SUPPRESSED
    return ""


def take_lapse_mark(
    profile_id: int, *, held: datetime | None, mark: datetime, take_any: bool
) -> bool:
    """Hold the artist for this lapse by writing `mark`; False when another notice holds them.

    A row that already holds the mark (`held`: a retry, a staff resend) keeps it;
    `take_any` (a `--resend` campaign) takes it whoever holds it. The status is checked
    in the same statement, so an artist who connected a moment ago is never marked.
    """
    free = Q(sumup_lapse_notified_at__isnull=True)
    if held is not None:
        free |= Q(sumup_lapse_notified_at=held)
    if take_any:
        free = Q()
    return bool(
        ArtistProfile.objects.filter(
            free, pk=profile_id, sumup_connection_status__in=NEEDS_CONNECTION
        ).update(sumup_lapse_notified_at=mark)
    )


def release_lapse_mark(profile_id: int | None, mark: datetime | None) -> None:
    """The notice definitely did not go out: let a later one reach the artist."""
    if profile_id is None or mark is None:
        return
    ArtistProfile.objects.filter(pk=profile_id, sumup_lapse_notified_at=mark).update(
        sumup_lapse_notified_at=None
    )


def take_lapse_marks(
    claims: list[tuple[int, datetime | None, datetime]], *, take_any: bool
) -> set[int]:
    """`take_lapse_mark` for a batch in one statement: each claim is (profile id, the
    mark its row already holds or None, the mark to write); returns the profile ids now
    held for this lapse."""
    if not claims:
        return set()
    profiles, held, marks = (list(column) for column in zip(*claims, strict=True))
    table = ArtistProfile._meta.db_table
    sql = f"""
        UPDATE {table} AS p SET sumup_lapse_notified_at = v.mark
        FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS v(id, held, mark)
        WHERE p.id = v.id AND p.sumup_connection_status = ANY(%s)
          AND (%s OR p.sumup_lapse_notified_at IS NULL OR p.sumup_lapse_notified_at = v.held)
        RETURNING p.id
    """  # noqa: S608 (the table name is the model's own)
    with connection.cursor() as cursor:
        cursor.execute(sql, [profiles, held, marks, list(NEEDS_CONNECTION), take_any])
        return {row[0] for row in cursor.fetchall()}


def release_lapse_marks(held: list[tuple[int | None, datetime | None]]) -> None:
    """`release_lapse_mark` for a batch whose notices definitely did not go out."""
    pairs = [(profile, mark) for profile, mark in held if profile is not None and mark is not None]
    if not pairs:
        return
    profiles, marks = (list(column) for column in zip(*pairs, strict=True))
    table = ArtistProfile._meta.db_table
    sql = f"""
        UPDATE {table} AS p SET sumup_lapse_notified_at = NULL
        FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, mark)
        WHERE p.id = v.id AND p.sumup_lapse_notified_at = v.mark
    """  # noqa: S608 (the table name is the model's own)
    with connection.cursor() as cursor:
        cursor.execute(sql, [profiles, marks])


def restore_lapse_marks(marks: list[tuple[int | None, datetime | None, datetime | None]]) -> None:
    """Undo `take_lapse_marks` for notices that were never sent: each artist still
    marked with the mark taken (profile id, mark taken, mark before) gets the one before
    back (none: free for a later notice)."""
    changed = [
        (profile, taken, before)
        for profile, taken, before in marks
        if profile is not None and taken is not None and taken != before
    ]
    if not changed:
        return
    profiles, taken, before = (list(column) for column in zip(*changed, strict=True))
    table = ArtistProfile._meta.db_table
    sql = f"""
        UPDATE {table} AS p SET sumup_lapse_notified_at = v.before
        FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS v(id, taken, before)
        WHERE p.id = v.id AND p.sumup_lapse_notified_at = v.taken
    """  # noqa: S608 (the table name is the model's own)
    with connection.cursor() as cursor:
        cursor.execute(sql, [profiles, taken, before])
