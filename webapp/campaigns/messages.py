"""The email one recipient gets: HTML and plain text from Django templates, personalised,
with one-click unsubscribe headers and the ids the tracking webhook joins back on."""

from __future__ import annotations

from collections.abc import Callable

from anymail.message import AnymailMessage
from django.conf import settings

from accounts.models import ArtistProfile
from campaigns import provider, tracking
from campaigns.models import Campaign, Recipient
from campaigns.reconnect_notice import RenderedMessage, render_reconnect_message
from campaigns.unsubscribe import list_unsubscribe_headers, sample_unsubscribe_url, unsubscribe_url

# A campaign's `template` names the Django templates; each has the function that
# renders them for one artist.
RENDERERS: dict[str, Callable[[ArtistProfile], RenderedMessage]] = {
    Campaign.TEMPLATES[Campaign.Kind.SUMUP_RECONNECT]: render_reconnect_message,
}


def build(
    campaign: Campaign, profile: ArtistProfile, recipient: Recipient | None = None
) -> AnymailMessage:
    """The message for `profile`; without `recipient` (a preview or a sample) the
    unsubscribe link is a sample that unsubscribes no one, and no provider ids are
    attached."""
    rendered = RENDERERS[campaign.template](profile)
    unsubscribe = sample_unsubscribe_url() if recipient is None else unsubscribe_url(recipient.pk)
    message = AnymailMessage(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[rendered.to],
        headers=list_unsubscribe_headers(unsubscribe),
    )
    message.attach_alternative(rendered.html, "text/html")
    message.tags = [campaign.kind]
    if recipient is not None:
        # Opaque ids only: some providers show metadata to the recipient as a header.
        message.metadata = tracking.metadata_for(recipient)
        message.extra_headers.update(provider.idempotency_headers(str(recipient.idempotency_key)))
    return message
