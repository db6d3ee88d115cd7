"""Who a campaign emails: chosen when it starts, and checked again just before each send.

An artist is emailed about reconnecting SumUp at most once per lapse. The mark is the
profile's `sumup_lapse_notified_at`, which connecting clears: whoever sets it from NULL
with a conditional UPDATE (a campaign send, or the refresh machinery's notice) holds
the artist for this lapse, and every other notice skips them until they reconnect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
