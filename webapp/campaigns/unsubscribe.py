"""One-click unsubscribe (RFC 8058): signed links and what following one does.

The token carries the address and the recipient row, signed with SECRET_KEY under its
own salt; it never expires, because a mail client may offer the link months later.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Recipient, Suppression

SALT = "campaigns.unsubscribe"
# What a preview shows in place of a signed token (which always holds a ":").
PREVIEW_SAMPLE = "sample-from-a-preview-unsubscribes-no-one"
# Statuses a later unsubscribe may not overwrite: they say more about the address.
_FINAL = (Recipient.Status.BOUNCED, Recipient.Status.COMPLAINED)


@dataclass(frozen=True)
class Subscriber:
    email: str
    recipient_id: int | None


def make_token(email: str, recipient_id: int | None) -> str:
    return signing.dumps({"e": email.strip().lower(), "r": recipient_id}, salt=SALT, compress=True)


def read_token(token: str) -> Subscriber | None:
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("e"), str):
        return None
    recipient_id = data.get("r")
    return Subscriber(data["e"], recipient_id if isinstance(recipient_id, int) else None)


def unsubscribe_url(email: str, recipient_id: int | None) -> str:
    path = reverse("campaigns:unsubscribe", args=[make_token(email, recipient_id)])
    return f"{settings.SITE_URL}{path}"


def sample_unsubscribe_url() -> str:
    """The link a preview shows: it reads as a sample and carries no signed token, so
    following it unsubscribes no one (the view answers it as a link that does not work)."""
    path = reverse("campaigns:unsubscribe", args=[PREVIEW_SAMPLE])
    return f"{settings.SITE_URL}{path}"


def list_unsubscribe_headers(url: str) -> dict[str, str]:
    """`List-Unsubscribe` (`url`, plus mailto when UNSUBSCRIBE_EMAIL is set) and the
    one-click `List-Unsubscribe-Post` header."""
    targets = [f"<{url}>"]
    if settings.UNSUBSCRIBE_EMAIL:
        targets.append(f"<mailto:{settings.UNSUBSCRIBE_EMAIL}?subject=unsubscribe>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def suppress(email: str, reason: str, recipient_id: int | None = None) -> bool:
    """Add the address to the suppression list; False when it was already there."""
    try:
        with transaction.atomic():
            Suppression.objects.create(
                email=email.strip().lower(), reason=reason, recipient_id=recipient_id
            )
    except IntegrityError:
        return False
    return True


def unsubscribe(subscriber: Subscriber) -> None:
    """Never email this address again from a campaign; idempotent."""
    suppress(subscriber.email, Suppression.Reason.UNSUBSCRIBED, subscriber.recipient_id)
    if subscriber.recipient_id is not None:
        Recipient.objects.filter(pk=subscriber.recipient_id).exclude(status__in=_FINAL).exclude(
            status=Recipient.Status.UNSUBSCRIBED
        ).update(status=Recipient.Status.UNSUBSCRIBED, event_at=timezone.now())
