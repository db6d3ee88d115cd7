"""Delivery events from the provider's tracking webhook (anymail's `tracking` signal).

Events arrive late, out of order and more than once, so a recipient's status only moves
forward: sent (or unknown, or queued for a retry that turns out needless) → delivered →
bounced, complained or unsubscribed. A hard bounce, a complaint and an unsubscribe also
suppress the address for every later campaign. Events are joined back to the row by the
ids sent in the message's metadata, both of them (the row's id alone is a counter anyone
can guess; the send key is a random UUID only that message carried), or else by the
provider's message id. What is suppressed is the row's own address: the address an event
names is the provider's say, and an event must not silence anyone but its recipient.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType
from django.db import transaction
from django.utils import timezone

from campaigns.models import Recipient, Suppression
from campaigns.unsubscribe import suppress

log = logging.getLogger(__name__)

S = Recipient.Status
_NOT_YET_DELIVERED: tuple[str, ...] = (S.QUEUED, S.SENDING, S.UNKNOWN, S.SENT)
# event type -> (new status, statuses it may replace, suppression reason or None)
_TRANSITIONS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    EventType.DELIVERED: (S.DELIVERED, _NOT_YET_DELIVERED, None),
    EventType.BOUNCED: (S.BOUNCED, (*_NOT_YET_DELIVERED, S.DELIVERED), Suppression.Reason.BOUNCED),
    EventType.COMPLAINED: (
        S.COMPLAINED,
        (*_NOT_YET_DELIVERED, S.DELIVERED, S.UNSUBSCRIBED),
        Suppression.Reason.COMPLAINED,
    ),
    EventType.UNSUBSCRIBED: (
        S.UNSUBSCRIBED,
        (*_NOT_YET_DELIVERED, S.DELIVERED),
        Suppression.Reason.UNSUBSCRIBED,
    ),
}


def metadata_for(recipient: Recipient) -> dict[str, str]:
    """What a message carries so its events find this row (opaque ids only)."""
    return {
        "campaign_recipient_id": str(recipient.pk),
        "campaign_send_key": str(recipient.idempotency_key),
    }


def on_tracking(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    transition = _TRANSITIONS.get(event.event_type)
    if transition is None or (event.event_type == EventType.BOUNCED and _is_soft(event)):
        return  # opens, clicks, deferrals and soft bounces change nothing here
    recipient = _recipient_for(event)
    if recipient is None:
        return  # not a campaign email (or one whose row was queued again since)
    status, replaces, reason = transition
    with transaction.atomic():
        moved = Recipient.objects.filter(pk=recipient.pk, status__in=replaces).update(
            status=status, event_at=event.timestamp or timezone.now(), claimed_until=None
        )
        if reason is not None:
            suppress(recipient.email, reason, recipient.pk)
    if moved:
        log.info("campaign recipient %s: %s (%s)", recipient.pk, status, esp_name)


def _recipient_for(event: AnymailTrackingEvent) -> Recipient | None:
    metadata = event.metadata or {}
    recipient_id = str(metadata.get("campaign_recipient_id", ""))
    if recipient_id.isascii() and recipient_id.isdigit():
        send_key = _uuid(metadata.get("campaign_send_key"))
        if send_key is None:
            return None  # an id without its send key proves nothing
        return Recipient.objects.filter(pk=int(recipient_id), idempotency_key=send_key).first()
    if event.message_id:
        return Recipient.objects.filter(message_id=str(event.message_id)).first()
    return None


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _is_soft(event: AnymailTrackingEvent) -> bool:
    """Providers name soft bounces in their raw event (Brevo `soft_bounce`, Postmark
    `SoftBounce`, ...); anymail reports both kinds as `bounced`."""
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    kind = str(raw.get("event") or raw.get("Type") or raw.get("type") or "")
    return "soft" in kind.lower()
