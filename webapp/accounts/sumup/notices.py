"""Emails that tell an artist their SumUp connection changed.

Sent after the change is committed; a failing email provider is logged, never allowed
to undo or break the connection change itself.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from accounts.models import ArtistProfile

log = logging.getLogger(__name__)


def _send(profile: ArtistProfile, template: str, context: dict[str, str]) -> None:
    if not profile.user.email:
        return
    context = {
        "display_name": profile.display_name or profile.user.get_username(),
        "dashboard_url": f"{settings.SITE_URL}/accounts/dashboard/",
        **context,
    }
    subject = " ".join(render_to_string(f"accounts/email/{template}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"accounts/email/{template}.txt", context),
        to=[profile.user.email],
    )
    message.attach_alternative(
        render_to_string(f"accounts/email/{template}.html", context), "text/html"
    )
    try:
        message.send()
    except Exception:  # any provider failure: the connection change stands regardless
        log.exception("could not send the %s email to artist profile %s", template, profile.pk)


def send_connected(profile: ArtistProfile) -> None:
    _send(
        profile,
        "sumup_connected",
        {
            "merchant_code": profile.sumup_merchant_code or "",
            "business_name": profile.sumup_business_name,
        },
    )


def send_disconnected(profile: ArtistProfile, merchant_code: str) -> None:
    _send(profile, "sumup_disconnected", {"merchant_code": merchant_code})
