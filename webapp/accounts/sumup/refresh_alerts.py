"""What the refresh machinery tells people: staff when our credentials fail, artists
when their grant is dead. Both at most once per occurrence."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache
from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from accounts.models import ArtistProfile
from accounts.signals import sumup_grant_lapsed

log = logging.getLogger(__name__)

HALT_KEY = "sumup:refresh:halted"
HALT_SECONDS = 7 * 24 * 3600  # the flag outlives any outage; a successful probe clears it


def halt(reason: str) -> None:
    """SumUp refuses our client credentials: every refresh would fail the same way."""
    first = cache.add(HALT_KEY, {"since": time.time(), "reason": reason[:200]}, HALT_SECONDS)
    if first:
        log.error(
            "SumUp refused the platform's client credentials (%s); token refresh is halted "
            "until a probe succeeds. Check SUMUP_CLIENT_ID and SUMUP_CLIENT_SECRET.",
            reason,
        )
        mail_admins(
            "SumUp token refresh halted: client credentials refused",
            "SumUp answered invalid_client to a token refresh. No artist's status was "
            "changed. Every sweep now probes one artist and resumes by itself once SumUp "
            f"accepts the credentials again.\n\nDetail: {reason}",
        )


def is_halted() -> bool:
    return cache.get(HALT_KEY) is not None


def clear_halt() -> None:
    if cache.delete(HALT_KEY):
        log.warning("SumUp accepted the platform's client credentials again; refresh resumes")


def ask_to_reconnect(profile_id: int) -> None:
    """Have the artist emailed once per lapse (the mark is cleared when they connect again).

    Marks the artist and announces `sumup_grant_lapsed` in the same transaction. The
    campaigns app answers it the way campaign emails go (its standing campaign): one
    recipient row per artist, the suppression list, the global email rate, sent by a
    worker after this transaction commits.
    """
    mark = timezone.now()
    with transaction.atomic():
        marked = ArtistProfile.objects.filter(
            pk=profile_id, sumup_lapse_notified_at__isnull=True
        ).update(sumup_lapse_notified_at=mark)
        if marked:
            sumup_grant_lapsed.send(sender=ArtistProfile, profile_id=profile_id, mark=mark)
