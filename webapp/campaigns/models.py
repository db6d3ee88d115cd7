"""Email campaigns: what was asked, to whom, and what became of every message.

`Recipient` is the source of truth for progress: one row per artist and campaign, moved
through its statuses only by conditional UPDATEs (see campaigns.sending), so any number
of workers and redelivered tasks agree on who was sent what.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.db.models import Count, Q
from limits import RateLimitItem

from accounts.models import ArtistProfile, User
from events.rate_limits import parse_rate


def default_rate() -> str:
    return str(settings.EMAIL_RATE_LIMIT)


def validate_rate(text: str) -> None:
    try:
        parse_rate(text)
    except ImproperlyConfigured as exc:
        raise ValidationError(str(exc)) from None


class Campaign(models.Model):
    class Kind(models.TextChoices):
        SUMUP_RECONNECT = "sumup_reconnect", "Ask artists to (re)connect SumUp"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        CANCELLED = "cancelled", "Cancelled"
        DONE = "done", "Done"

    # The Django templates (`<base>_subject.txt`, `.txt`, `.html`) each kind renders by
    # default; campaigns.messages holds the renderer of each.
    TEMPLATES = {Kind.SUMUP_RECONNECT: "accounts/email/sumup_reconnect"}

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=40, choices=Kind.choices, default=Kind.SUMUP_RECONNECT)
    template = models.CharField(
        max_length=200,
        choices=[(path, path) for path in TEMPLATES.values()],
        default=TEMPLATES[Kind.SUMUP_RECONNECT],
    )
    approved_only = models.BooleanField(
        default=True, help_text="Only artists whose profile is approved."
    )
    include_notified = models.BooleanField(
        "resend",
        default=False,
        help_text="Also email artists notified since they were disconnected.",
    )
    automatic = models.BooleanField(
        default=False,
        editable=False,
        help_text="Carries the notices the token refresh sends.",
    )
    rate_limit = models.CharField(
        max_length=20,
        blank=True,
        default=default_rate,
        validators=[validate_rate],
        help_text="Most emails per period for all workers (10/s); empty: none.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The live dispatch chain: only the task carrying this token may feed the queue, it
    # proves it is alive by the heartbeat, and the next send it hands out is due at
    # `dispatch_next_at` (see campaigns.dispatch).
    dispatch_token = models.CharField(max_length=36, blank=True, default="", editable=False)
    dispatch_heartbeat = models.DateTimeField(null=True, blank=True, editable=False)
    dispatch_next_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("start_campaign", "Can start, pause and resume a campaign"),
            ("cancel_campaign", "Can cancel a campaign"),
            ("resend_recipient", "Can resend to a recipient whose outcome is unknown"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=Q(automatic=True), name="campaign_one_automatic_per_kind"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def rate(self) -> RateLimitItem | None:
        return parse_rate(self.rate_limit, setting="rate limit") if self.rate_limit else None

    def counts(self) -> dict[str, int]:
        """Recipients by status (every status present, zero when none)."""
        rows = self.recipients.values("status").annotate(n=Count("pk")).order_by()
        found = {row["status"]: row["n"] for row in rows}
        return {status: found.get(status, 0) for status in Recipient.Status.values}


class Recipient(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        UNKNOWN = "unknown", "Outcome unknown"
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients")
    # Kept when an artist is deleted: the row still says what that address was sent.
    artist = models.ForeignKey(
        ArtistProfile, null=True, on_delete=models.SET_NULL, related_name="campaign_recipients"
    )
    email = models.EmailField(help_text="The address the message went (or would go) to.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    attempts = models.IntegerField(default=0)
    message_id = models.CharField(max_length=255, blank=True, default="")
    last_error = models.CharField(max_length=300, blank=True, default="")
    # The row's own send key: tracking events join on it, and a row sent alone (the
    # release before, a staff resend) gives it to the provider as its idempotency key.
    idempotency_key = models.UUIDField(default=uuid.uuid4, editable=False)
    # The idempotency key of the one provider request that carries this row with the
    # rest of its batch: set at the first claim, kept by every resend of the row, which
    # goes out with the others of this key only (campaigns.sending).
    batch_key = models.UUIDField(null=True, blank=True, editable=False)
    # The artist's `sumup_lapse_notified_at` this row set: while held, no other notice
    # goes to this artist for the same lapse (see campaigns.audience).
    lapse_mark = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    event_at = models.DateTimeField(null=True, blank=True, help_text="Last tracking event.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "artist"], name="recipient_one_per_artist_and_campaign"
            )
        ]
        indexes = [
            models.Index(fields=["campaign", "status"], name="recipient_campaign_status_idx"),
            models.Index(
                fields=["claimed_until"],
                condition=Q(status="sending"),
                name="recipient_claims_idx",
            ),
            models.Index(
                fields=["message_id"], condition=~Q(message_id=""), name="recipient_message_idx"
            ),
            models.Index(
                fields=["batch_key"],
                condition=Q(batch_key__isnull=False),
                name="recipient_batch_key_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} in {self.campaign_id}"


class Suppression(models.Model):
    """An address no campaign emails again."""

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Hard bounce"
        COMPLAINED = "complained", "Spam complaint"
        MANUAL = "manual", "Added by staff"

    email = models.CharField(max_length=254, unique=True, help_text="Lower case.")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    recipient = models.ForeignKey(
        Recipient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.reason})"


class CampaignAction(models.Model):
    """Who did what to a campaign, and when (staff, the command line, or the system)."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        STARTED = "started", "Started"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        CANCELLED = "cancelled", "Cancelled"
        RESENT = "resent", "Resend ordered"
        REQUEUED = "requeued", "Queued again for a new lapse"
        RECOVERED = "recovered", "Recovered after a lost worker"
        FINISHED = "finished", "Finished"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=20, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=150, help_text="The user, or what acted without one.")
    at = models.DateTimeField(auto_now_add=True)
    detail = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor}"

    @classmethod
    def record(
        cls,
        campaign: Campaign | int,
        action: str,
        *,
        user: User | AnonymousUser | None = None,
        actor: str = "",
        detail: str = "",
    ) -> CampaignAction:
        """Log one action: by `user` when a person acted, else by `actor` (e.g. "system")."""
        person = user if isinstance(user, User) else None
        return cls.objects.create(
            campaign_id=campaign if isinstance(campaign, int) else campaign.pk,
            action=action,
            user_id=person.pk if person is not None else None,
            actor=(person.get_username() if person is not None else actor or "system")[:150],
            detail=detail[:300],
        )
