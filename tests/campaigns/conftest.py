"""Fixtures for the campaign tests: the fake Brevo API on loopback behind anymail's real
Brevo backend, a clean rate limiter, campaigns ready to send and staff with chosen
permissions."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from accounts.models import ArtistProfile, User
from campaigns import provider, services
from campaigns.models import Campaign
from events import shared_redis
from fakes.brevo import FakeBrevo
from jobs import app


@pytest.fixture(scope="session")
def esp_server() -> Iterator[FakeBrevo]:
    with FakeBrevo() as fake:
        yield fake


@pytest.fixture
def esp(esp_server: FakeBrevo, settings: Any) -> Iterator[FakeBrevo]:
    """The fake Brevo, fresh, with the site sending through anymail's Brevo backend."""
    esp_server.state.reset()
    settings.EMAIL_BACKEND = FakeBrevo.BACKEND
    settings.ANYMAIL = esp_server.anymail_settings()
    yield esp_server
    esp_server.state.reset()  # also releases any request a test left hanging
    provider.close()


@pytest.fixture(autouse=True)
def clean_limiter() -> None:
    """Rate-limit windows live in the test Redis database."""
    shared_redis.client().flushdb()


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks run inline where they are queued (no worker needed)."""
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    monkeypatch.setitem(app.conf, "task_eager_propagates", True)


@pytest.fixture
def artists(make_artist) -> Callable[..., list[ArtistProfile]]:
    """`artists(n, **fields)`: n approved artists who must connect SumUp (by default)."""

    def make(n: int, **fields: Any) -> list[ArtistProfile]:
        fields.setdefault("is_approved", True)
        return [make_artist(**fields) for _ in range(n)]

    return make


@pytest.fixture
def started() -> Callable[..., Campaign]:
    """A campaign created and started through the services (sends queued on commit)."""

    def start(**fields: Any) -> Campaign:
        fields.setdefault("name", "Reconnect")
        fields.setdefault("rate_limit", "")
        campaign = services.create(Campaign(**fields), actor="test")
        services.start(campaign.pk, actor="test")
        campaign.refresh_from_db()
        return campaign

    return start


@pytest.fixture
def staff() -> Callable[..., User]:
    """`staff(*codenames)`: a logged-in-able staff user who may view campaigns, with
    these campaign permissions besides."""
    counter = iter(range(1, 1000))

    def make(*codenames: str) -> User:
        user = User.objects.create_user(f"staff{next(counter)}", password="x", is_staff=True)
        perms = Permission.objects.filter(
            content_type__app_label="campaigns", codename__in=["view_campaign", *codenames]
        )
        user.user_permissions.set(perms)
        return user

    return make
