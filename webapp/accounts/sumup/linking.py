"""Linking and unlinking an artist's SumUp merchant: the writes and the notices."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import ArtistProfile
from accounts.sumup import notices

log = logging.getLogger(__name__)


class MerchantAlreadyLinked(Exception):
    """The SumUp merchant already pays another artist."""


def connect_merchant(
    *, profile_id: int, token: dict[str, Any], merchant_code: str, business_name: str
) -> ArtistProfile:
    """Store the tokens and merchant on the profile, then email the artist.

    Refuses a merchant linked to another artist (checked under the row lock and, for the
    race between two artists, by the database's unique constraint).
    """
    try:
        with transaction.atomic():
            profile = (
                ArtistProfile.objects.select_for_update().select_related("user").get(pk=profile_id)
            )
            taken = (
                ArtistProfile.objects.filter(sumup_merchant_code=merchant_code)
                .exclude(pk=profile_id)
                .exists()
            )
            if taken:
                raise MerchantAlreadyLinked(merchant_code)
            profile.update_sumup_connection(
                {**token, "merchant_code": merchant_code, "business_name": business_name}
            )
            transaction.on_commit(lambda: notices.send_connected(profile))
    except IntegrityError:
        raise MerchantAlreadyLinked(merchant_code) from None
    log.info("artist profile %s connected SumUp merchant %s", profile_id, merchant_code)
    return profile


def disconnect_merchant(*, profile_id: int) -> ArtistProfile:
    with transaction.atomic():
        profile = (
            ArtistProfile.objects.select_for_update().select_related("user").get(pk=profile_id)
        )
        merchant_code = profile.sumup_merchant_code or ""
        profile.disconnect_sumup()
        transaction.on_commit(lambda: notices.send_disconnected(profile, merchant_code))
    log.info("artist profile %s disconnected SumUp", profile_id)
    return profile
