"""Who must be asked to (re)connect SumUp, and what the message says.

The message's templates keep their names under `accounts/email/` (in accounts' template
folder, beside the other SumUp emails): every campaign row stores that name in
`Campaign.template`."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.template.loader import render_to_string

from accounts.models import ArtistProfile
from accounts.sumup.connection import NEEDS_CONNECTION, ConnectionStatus


@dataclass(frozen=True)
class RenderedMessage:
    to: str
    subject: str
    text: str
    html: str


def audience(*, approved_only: bool) -> QuerySet[ArtistProfile]:
    """Active artists with an email address whose SumUp connection is not working."""
    profiles = ArtistProfile.objects.filter(
        sumup_connection_status__in=NEEDS_CONNECTION,
        user__is_active=True,
    ).exclude(user__email="")
    if approved_only:
        profiles = profiles.filter(is_approved=True)
    return profiles.select_related("user").order_by("pk")


# What happened to the artist's connection, said as they would say it: never "token". An
# artist connected since the campaign began reads the first, the campaign's reason to write.
WHAT_HAPPENED: dict[str, str] = {
    ConnectionStatus.NOT_CONNECTED: (
        "Jersey Events now takes ticket payments through each artist's own SumUp account, "
        "and yours is not connected yet."
    ),
    ConnectionStatus.EXPIRED: (
        "SumUp needs you to reconnect your account so ticket buyers can keep paying by card."
    ),
    ConnectionStatus.ERROR: (
        "We could not reach your SumUp account, so ticket buyers cannot pay you by card "
        "until you reconnect it."
    ),
}


# The context values that differ from one artist to the next: a batch renders the
# templates once per combination of the others (campaigns.messages).
PERSONAL = ("display_name",)


def reconnect_context(profile: ArtistProfile) -> dict[str, Any]:
    return {
        "display_name": profile.display_name or profile.user.get_username(),
        "dashboard_url": f"{settings.SITE_URL}/accounts/dashboard/",
        "what_happened": WHAT_HAPPENED.get(
            profile.sumup_status, WHAT_HAPPENED[ConnectionStatus.NOT_CONNECTED]
        ),
        # An artist whose connection lapsed reconnects; one never connected connects.
        "reconnect": profile.sumup_status in (ConnectionStatus.EXPIRED, ConnectionStatus.ERROR),
    }


def render_reconnect(context: dict[str, Any], to: str = "") -> RenderedMessage:
    subject = render_to_string("accounts/email/sumup_reconnect_subject.txt", context).strip()
    return RenderedMessage(
        to=to,
        subject=" ".join(subject.split()),
        text=render_to_string("accounts/email/sumup_reconnect.txt", context),
        html=render_to_string("accounts/email/sumup_reconnect.html", context),
    )


def render_reconnect_message(profile: ArtistProfile) -> RenderedMessage:
    return render_reconnect(reconnect_context(profile), to=profile.user.email)
