"""One-click unsubscribe (RFC 8058): signed links and what following one does.

The token names the recipient row by its id, never the address (a link is seen by mail
scanners, proxies and logs), signed with SECRET_KEY under its own salt and stamped with
the time it was made. It is honoured for UNSUBSCRIBE_LINK_MAX_AGE (180 days) after the
email went out: mail clients offer the one-click link from the message's headers for as
long as the message sits in the mailbox, and RFC 8058 asks that the link keep working
long after sending; a reconnect campaign's message is stale well before then. A link
that is older, altered, or whose row is gone shows the page saying it does not work
(and how to unsubscribe by reply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.policy import Policy

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Recipient, Suppression

SALT = "campaigns.unsubscribe"
UNSUBSCRIBE_LINK_MAX_AGE = 180 * 24 * 3600  # seconds a link in an email keeps working
# What a preview shows in place of a signed token (which always holds a ":").
PREVIEW_SAMPLE = "sample-from-a-preview-unsubscribes-no-one"
# Statuses a later unsubscribe may not overwrite: they say more about the address.
_FINAL = (Recipient.Status.BOUNCED, Recipient.Status.COMPLAINED)


@dataclass(frozen=True)
class Subscriber:
    email: str
    recipient_id: int


def make_token(recipient_id: int) -> str:
    return signing.dumps({"r": recipient_id}, salt=SALT, compress=True)


def read_token(token: str) -> Subscriber | None:
    """Whom a link unsubscribes: its recipient row, while the link is young enough."""
    try:
        data = signing.loads(token, salt=SALT, max_age=UNSUBSCRIBE_LINK_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    recipient_id = data.get("r") if isinstance(data, dict) else None
    if not isinstance(recipient_id, int) or isinstance(recipient_id, bool):
        return None
    email = Recipient.objects.filter(pk=recipient_id).values_list("email", flat=True).first()
    return None if email is None else Subscriber(email, recipient_id)


def unsubscribe_url(recipient_id: int) -> str:
    path = reverse("campaigns:unsubscribe", args=[make_token(recipient_id)])
    return f"{settings.SITE_URL}{path}"


def sample_unsubscribe_url() -> str:
    """The link a preview shows: it reads as a sample and carries no signed token, so
    following it unsubscribes no one (the view answers it as a link that does not work)."""
    path = reverse("campaigns:unsubscribe", args=[PREVIEW_SAMPLE])
    return f"{settings.SITE_URL}{path}"


class ListUnsubscribe(str):
    """The `List-Unsubscribe` value, folded only between its `<...>` targets.

    Python's email policies fold every header longer than 78 characters, and a word
    longer than a line (a signed link is) is folded as RFC 2047 encoded words,
    `=?utf-8?q?=3Chttps=3A//...`, which no mail client reads as a URL: RFC 2369 wants
    each URL in angle brackets, broken only at whitespace between them. The email
    package lets a header value with a `name` and a `fold()` fold itself (its own header
    classes work so), and Django passes a str subclass on as it is; API backends
    (anymail) send it as the plain string it also is.
    """

    name = "List-Unsubscribe"

    def __new__(cls, value: str) -> ListUnsubscribe:
        if not value.isascii():
            raise ValueError(f"List-Unsubscribe takes ASCII URLs only (RFC 2369), got {value!r}")
        return super().__new__(cls, value)

    def fold(self, *, policy: Policy) -> str:
        targets = _TARGET.findall(self)
        return f"{self.name}: " + f",{policy.linesep} ".join(targets) + policy.linesep


_TARGET = re.compile(r"<[^<>]*>")


def list_unsubscribe_headers(url: str) -> dict[str, str]:
    """`List-Unsubscribe` (`url`, plus mailto when UNSUBSCRIBE_EMAIL is set) and the
    one-click `List-Unsubscribe-Post` header."""
    targets = [f"<{url}>"]
    if settings.UNSUBSCRIBE_EMAIL:
        targets.append(f"<mailto:{settings.UNSUBSCRIBE_EMAIL}?subject=unsubscribe>")
    return {
        "List-Unsubscribe": ListUnsubscribe(", ".join(targets)),
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
    Recipient.objects.filter(pk=subscriber.recipient_id).exclude(status__in=_FINAL).exclude(
        status=Recipient.Status.UNSUBSCRIBED
    ).update(status=Recipient.Status.UNSUBSCRIBED, event_at=timezone.now())
