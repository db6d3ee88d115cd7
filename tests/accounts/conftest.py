"""Fixtures of the SumUp connection tests."""

from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import ArtistProfile
from fakes.sumup import FakeSumUp

ConnectedArtist = Callable[..., ArtistProfile]


@pytest.fixture
def connected_artist(make_artist, sumup: FakeSumUp) -> ConnectedArtist:
    """An artist connected through a real grant at the fake, with a token due for refresh."""
    counter = iter(range(1, 100_000))

    def make(*, expires_in: int = 120, **profile_fields: Any) -> ArtistProfile:
        n = next(counter)
        email = f"merchant{n}@example.com"
        sumup.add_user(email, [{"code": f"MT{n:06d}", "name": f"Merchant {n}"}])
        token = sumup.mint_grant(email)
        profile: ArtistProfile = make_artist(**profile_fields)
        profile.update_sumup_connection(
            {**token, "expires_in": expires_in, "merchant_code": f"MT{n:06d}"}
        )
        return profile

    return make
