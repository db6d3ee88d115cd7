"""The email one recipient gets: HTML and plain text from Django templates, personalised,
with one-click unsubscribe headers and the ids the tracking webhook joins back on.

A batch for the provider's batch API (`build_batch`) is rendered once: the templates are
rendered with each value that differs from artist to artist (a notice's `personal`
context) left as a Brevo template placeholder, `{{ params.<name> }}`, and the provider
fills in each recipient's own value from the message's `merge_data`. Brevo escapes a
param's HTML by default, which is what the HTML part needs; the plain-text part wraps
each placeholder in `{% autoescape off %}`, so a name such as "Tom & Jerry" reads as
written there. Each recipient gets its own unsubscribe link (`merge_headers`) and
tracking ids (`merge_metadata`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from anymail.message import AnymailMessage
from django.conf import settings
from django.utils.safestring import mark_safe

from accounts.models import ArtistProfile
from campaigns import provider, tracking
from campaigns.models import Campaign, Recipient
from campaigns.reconnect_notice import (
    PERSONAL,
    RenderedMessage,
    reconnect_context,
    render_reconnect,
)
from campaigns.unsubscribe import list_unsubscribe_headers, sample_unsubscribe_url, unsubscribe_url

HTML_PARAM = "{{{{ params.{name} }}}}"
TEXT_PARAM = "{{% autoescape off %}}{{{{ params.{name} }}}}{{% endautoescape %}}"


@dataclass(frozen=True)
class Notice:
    """How a campaign's template is rendered: its context for one artist, the message
    rendered from a context (addressed to `to`), and the context values that are the
    artist's own."""

    context: Callable[[ArtistProfile], dict[str, Any]]
    render: Callable[[dict[str, Any], str], RenderedMessage]
    personal: tuple[str, ...]


# A campaign's `template` names the Django templates; each has its notice.
NOTICES: dict[str, Notice] = {
    Campaign.TEMPLATES[Campaign.Kind.SUMUP_RECONNECT]: Notice(
        reconnect_context, render_reconnect, PERSONAL
    ),
}


def build(
    campaign: Campaign, profile: ArtistProfile, recipient: Recipient | None = None
) -> AnymailMessage:
    """The message for `profile`; without `recipient` (a preview or a sample) the
    unsubscribe link is a sample that unsubscribes no one, and no provider ids are
    attached."""
    notice = NOTICES[campaign.template]
    rendered = notice.render(notice.context(profile), profile.user.email)
    unsubscribe = sample_unsubscribe_url() if recipient is None else unsubscribe_url(recipient.pk)
    message = _message(campaign, rendered.subject, rendered.text, rendered.html, [rendered.to])
    message.extra_headers.update(list_unsubscribe_headers(unsubscribe))
    if recipient is not None:
        # Opaque ids only: some providers show metadata to the recipient as a header.
        message.metadata = tracking.metadata_for(recipient)
        message.extra_headers.update(provider.idempotency_headers(str(recipient.idempotency_key)))
    return message


def variant(campaign: Campaign, profile: ArtistProfile) -> Hashable:
    """What the artist's message shares with others': artists of one variant can go in
    one batch, rendered once."""
    notice = NOTICES[campaign.template]
    context = notice.context(profile)
    return tuple(sorted((k, v) for k, v in context.items() if k not in notice.personal))


def build_batch(
    campaign: Campaign, members: Sequence[tuple[Recipient, ArtistProfile]], key: str
) -> AnymailMessage:
    """One message for the provider's batch API to every member (each at their
    profile's address, each address once), rendered once from the first member's
    variant, under the idempotency key `key`."""
    notice = NOTICES[campaign.template]
    shared = notice.context(members[0][1])
    html = notice.render({**shared, **_placeholders(notice, HTML_PARAM)}, "").html
    plain = notice.render({**shared, **_placeholders(notice, TEXT_PARAM)}, "")
    addresses = [profile.user.email for _, profile in members]
    message = _message(campaign, plain.subject, plain.text, html, addresses)
    message.merge_data, message.merge_headers, message.merge_metadata = {}, {}, {}
    for (recipient, profile), address in zip(members, addresses, strict=True):
        context = notice.context(profile)
        message.merge_data[address] = {name: str(context[name]) for name in notice.personal}
        message.merge_headers[address] = list_unsubscribe_headers(unsubscribe_url(recipient.pk))
        message.merge_metadata[address] = tracking.metadata_for(recipient)
    message.extra_headers.update(provider.idempotency_headers(key))
    return message


def keep_only(message: AnymailMessage, addresses: set[str]) -> None:
    """Leave out of a batch message every recipient but these (the others were lost to
    another process or skipped at the claim)."""
    message.to = [address for address in message.to if address in addresses]
    for merged in (message.merge_data, message.merge_headers, message.merge_metadata):
        for address in set(merged or {}) - addresses:
            del merged[address]


def _placeholders(notice: Notice, form: str) -> dict[str, str]:
    return {name: mark_safe(form.format(name=name)) for name in notice.personal}  # noqa: S308


def _message(
    campaign: Campaign, subject: str, text: str, html: str, to: list[str]
) -> AnymailMessage:
    message = AnymailMessage(
        subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=to
    )
    message.attach_alternative(html, "text/html")
    message.tags = [campaign.kind]
    return message
