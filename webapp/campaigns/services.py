"""Every change to a campaign goes through one function here: it moves the status with
a conditional UPDATE, records who did it, and queues work only after the commit."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone

from accounts.models import ArtistProfile, User
from campaigns import audience, dispatch
from campaigns.models import Campaign, CampaignAction, Recipient

INSERT_BATCH = 2000  # recipient rows per INSERT when a campaign starts
STANDING_NAME = "SumUp reconnect notices (sent by the token refresh on a revoked grant)"
REFRESH_ACTOR = "token refresh"

Person = User | AnonymousUser | None  # who acted: staff in the admin, or None (then `actor`)
Status = Campaign.Status
Action = CampaignAction.Action


class CampaignError(Exception):
    """The campaign is not in a state that allows this change."""


# The state machine: each change and the statuses it may be made from. The functions
# below move by it, and the admin offers only what it allows now.
CHANGES_FROM: dict[str, tuple[str, ...]] = {
    "start": (Status.DRAFT,),
    "pause": (Status.RUNNING,),
    "resume": (Status.PAUSED,),
    "cancel": (Status.DRAFT, Status.RUNNING, Status.PAUSED),
}


def changes_allowed(campaign: Campaign) -> list[str]:
    """The changes the campaign's status allows now (the standing campaign is never
    cancelled: the token refresh's notices go through it)."""
    return [
        change
        for change, from_ in CHANGES_FROM.items()
        if campaign.status in from_ and not (change == "cancel" and campaign.automatic)
    ]


def create(campaign: Campaign, *, user: Person = None, actor: str = "") -> Campaign:
    """Save a new draft campaign and record who created it."""
    campaign.status = Status.DRAFT
    campaign.template = campaign.template or Campaign.TEMPLATES[Campaign.Kind(campaign.kind)]
    campaign.created_by = user if isinstance(user, User) else None
    campaign.full_clean()
    with transaction.atomic():
        campaign.save()
        CampaignAction.record(campaign, Action.CREATED, user=user, actor=actor)
    return campaign


def start(campaign_id: int, *, user: Person = None, actor: str = "") -> dict[str, int]:
    """Queue one recipient per artist in the audience and start sending; returns the
    number of recipients queued and skipped."""
    now = timezone.now()
    with transaction.atomic():
        started = Campaign.objects.filter(pk=campaign_id, status__in=CHANGES_FROM["start"]).update(
            status=Status.RUNNING,
            started_at=now,
            started_by=user if isinstance(user, User) else None,
        )
        if not started:
            raise CampaignError("only a draft campaign can be started")
        campaign = Campaign.objects.get(pk=campaign_id)
        counts = _add_recipients(campaign)
        CampaignAction.record(
            campaign,
            Action.STARTED,
            user=user,
            actor=actor,
            detail=f"{counts['queued']} queued, {counts['skipped']} skipped, "
            f"rate {campaign.rate_limit or 'unlimited'}",
        )
        dispatch.restart(campaign_id)
    return counts


def _add_recipients(campaign: Campaign) -> dict[str, int]:
    counts = {"queued": 0, "skipped": 0}
    batch: list[Recipient] = []
    people = audience.candidates(approved_only=campaign.approved_only)
    for profile in people.iterator(chunk_size=INSERT_BATCH):
        reason = audience.skip_reason_at_start(profile, include_notified=campaign.include_notified)
        status = Recipient.Status.SKIPPED if reason else Recipient.Status.QUEUED
        counts["skipped" if reason else "queued"] += 1
        batch.append(
            Recipient(
                campaign=campaign,
                artist_id=profile.pk,
                email=profile.user.email,
                status=status,
                last_error=reason,
            )
        )
        if len(batch) >= INSERT_BATCH:
            Recipient.objects.bulk_create(batch)
            batch = []
    Recipient.objects.bulk_create(batch)
    return counts


def _move(
    campaign_id: int,
    *,
    from_: tuple[str, ...],
    to: str,
    action: str,
    user: Person,
    actor: str,
    **changes: Any,
) -> Campaign:
    with transaction.atomic():
        moved = Campaign.objects.filter(pk=campaign_id, status__in=from_).update(
            status=to, **changes
        )
        if not moved:
            allowed = " or ".join(from_)
            raise CampaignError(f"only a {allowed} campaign can be {action}")
        CampaignAction.record(campaign_id, action, user=user, actor=actor)
        return Campaign.objects.get(pk=campaign_id)


def pause(campaign_id: int, *, user: Person = None, actor: str = "") -> Campaign:
    """Stop handing out sends; those already with a worker finish."""
    return _move(
        campaign_id,
        from_=CHANGES_FROM["pause"],
        to=Status.PAUSED,
        action=Action.PAUSED,
        user=user,
        actor=actor,
        dispatch_token="",
    )


def pause_all(*, actor: str, note: Callable[[int], str] | None = None) -> list[int]:
    """Pause every running campaign, recording `note(id)` with each pause; returns the
    ids paused. A restore does this: its rows may be older than what was sent."""
    with transaction.atomic():
        ids = list(
            Campaign.objects.select_for_update()
            .filter(status=Status.RUNNING)
            .values_list("pk", flat=True)
        )
        Campaign.objects.filter(pk__in=ids).update(status=Status.PAUSED, dispatch_token="")
        for campaign_id in ids:
            CampaignAction.record(
                campaign_id,
                Action.PAUSED,
                actor=actor,
                detail=note(campaign_id) if note else "",
            )
    return ids


def resume(campaign_id: int, *, user: Person = None, actor: str = "") -> Campaign:
    with transaction.atomic():
        campaign = _move(
            campaign_id,
            from_=CHANGES_FROM["resume"],
            to=Status.RUNNING,
            action=Action.RESUMED,
            user=user,
            actor=actor,
        )
        # Sends handed out before the pause were dropped by their tasks: hand them out again.
        campaign.recipients.filter(status=Recipient.Status.QUEUED).update(dispatched_at=None)
        dispatch.restart(campaign_id)
    return campaign


def cancel(campaign_id: int, *, user: Person = None, actor: str = "") -> Campaign:
    """Stop for good: every recipient still queued is skipped."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.automatic:
            raise CampaignError("the standing campaign of the token refresh can only be paused")
        campaign = _move(
            campaign_id,
            from_=CHANGES_FROM["cancel"],
            to=Status.CANCELLED,
            action=Action.CANCELLED,
            user=user,
            actor=actor,
            dispatch_token="",
            finished_at=timezone.now(),
        )
        queued = campaign.recipients.filter(status=Recipient.Status.QUEUED)
        for artist_id, mark in queued.exclude(lapse_mark=None).values_list("artist", "lapse_mark"):
            audience.release_lapse_mark(artist_id, mark)
        queued.update(
            status=Recipient.Status.SKIPPED, last_error="campaign cancelled", lapse_mark=None
        )
    return campaign


def resend(recipient_ids: list[int], *, user: Person = None, actor: str = "") -> int:
    """Send again to recipients whose outcome is unknown (staff checked the provider):
    each alone, under its own key, not its batch's (which the provider may remember)."""
    with transaction.atomic():
        rows = Recipient.objects.filter(pk__in=recipient_ids, status=Recipient.Status.UNKNOWN)
        by_campaign: dict[int, int] = {}
        for campaign_id in rows.values_list("campaign_id", flat=True):
            by_campaign[campaign_id] = by_campaign.get(campaign_id, 0) + 1
        count = rows.update(
            status=Recipient.Status.QUEUED,
            next_attempt_at=None,
            dispatched_at=None,
            last_error="resend ordered by staff",
            batch_key=None,
        )
        for campaign_id, n in by_campaign.items():
            CampaignAction.record(
                campaign_id, Action.RESENT, user=user, actor=actor, detail=f"{n} recipient(s)"
            )
            Campaign.objects.filter(pk=campaign_id, status=Status.DONE).update(
                status=Status.RUNNING, finished_at=None
            )
            dispatch.kick(campaign_id)
    return count


def standing_campaign() -> Campaign:
    """The always-running campaign that carries the token refresh's reconnect notices."""
    campaign, created = Campaign.objects.get_or_create(
        kind=Campaign.Kind.SUMUP_RECONNECT,
        automatic=True,
        defaults={
            "name": STANDING_NAME,
            "approved_only": False,
            "status": Status.RUNNING,
            "started_at": timezone.now(),
            "rate_limit": settings.EMAIL_RATE_LIMIT,
        },
    )
    if created:
        CampaignAction.record(campaign, Action.STARTED, actor=REFRESH_ACTOR)
    return campaign


def on_sumup_grant_lapsed(sender: object, *, profile_id: int, mark: datetime, **_: Any) -> None:
    """Receiver of accounts.signals.sumup_grant_lapsed (connected in CampaignsConfig)."""
    queue_lapse_notice(profile_id, mark)


def queue_lapse_notice(profile_id: int, mark: datetime) -> None:
    """Email an artist whose grant lapsed, through the campaign path: the same rate,
    suppression list and record per artist. `mark` is the `sumup_lapse_notified_at`
    the caller set, which this notice now holds."""
    with transaction.atomic():
        campaign = standing_campaign()
        profile = ArtistProfile.objects.select_related("user").get(pk=profile_id)
        now = timezone.now()
        fresh = {
            "status": Recipient.Status.QUEUED,
            "email": profile.user.email,
            "lapse_mark": mark,
            "dispatched_at": now,
        }
        recipient, created = Recipient.objects.get_or_create(
            campaign=campaign, artist_id=profile_id, defaults=fresh
        )
        if not created:
            if recipient.status == Recipient.Status.SENDING:
                return  # a notice is going out to them this moment
            # One row per artist here: a new lapse reuses it, and the log keeps the old one.
            CampaignAction.record(
                campaign,
                Action.REQUEUED,
                actor=REFRESH_ACTOR,
                detail=f"artist {profile_id}; previous notice {recipient.status} "
                f"{recipient.message_id or ''} {recipient.sent_at or ''}".strip(),
            )
            Recipient.objects.filter(pk=recipient.pk).exclude(
                status=Recipient.Status.SENDING
            ).update(
                **fresh,
                attempts=0,
                message_id="",
                last_error="",
                idempotency_key=uuid.uuid4(),
                batch_key=None,
                next_attempt_at=None,
                claimed_until=None,
                sent_at=None,
                event_at=None,
            )
        dispatch.enqueue_sends([recipient.pk])
