"""Guessing passwords is throttled on both logins, the artists' and the admin's: after
five failures for one username from one address, that pair is locked out for 15 minutes,
right password or not. Behind the proxy the address is the client's, read from
X-Forwarded-For as the proxy wrote it."""

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
LIMIT = 5
ARTIST_LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def artist(make_artist: Callable[..., Any]) -> User:
    user: User = make_artist().user
    return user


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True)


def log_in(client: Client, url: str, user: User, password: str) -> Any:
    return client.post(url, {"username": user.username, "password": password})


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(client: Client, url: str, user: User, times: int) -> None:
    """`times` wrong passwords; the one that reaches the limit is answered with the lock."""
    for attempt in range(1, times + 1):
        response = log_in(client, url, user, "a wrong guess")
        assert response.status_code == (429 if attempt >= LIMIT else 200), attempt


@pytest.mark.parametrize("url", [ARTIST_LOGIN, ADMIN_LOGIN], ids=["artist", "admin"])
def test_five_failures_lock_the_username_out_from_that_address(client, artist, staff, url):
    user = artist if url == ARTIST_LOGIN else staff
    fail(client, url, user, LIMIT)

    refused = log_in(client, url, user, PASSWORD)

    assert refused.status_code == 429
    assert b"Too many failed logins" in refused.content
    assert b"unlocks by itself in 15 minutes" in refused.content
    assert not logged_in(client)
    [attempt] = AccessAttempt.objects.all()
    # The five guesses, and the try refused while locked (which starts the 15 minutes again).
    assert attempt.failures_since_start == LIMIT + 1 and attempt.username == user.username
    assert "a wrong guess" not in attempt.post_data, "the guesses are not kept"


def test_the_lockout_lifts_after_fifteen_minutes(client, artist):
    fail(client, ARTIST_LOGIN, artist, LIMIT)
    assert log_in(client, ARTIST_LOGIN, artist, PASSWORD).status_code == 429

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        answer = log_in(client, ARTIST_LOGIN, artist, PASSWORD)

    assert answer.status_code == 302 and logged_in(client)


def test_a_success_before_the_limit_starts_the_count_again(client, artist):
    fail(client, ARTIST_LOGIN, artist, LIMIT - 1)
    assert log_in(client, ARTIST_LOGIN, artist, PASSWORD).status_code == 302
    client.logout()

    fail(client, ARTIST_LOGIN, artist, LIMIT - 1)

    assert log_in(client, ARTIST_LOGIN, artist, PASSWORD).status_code == 302


def test_the_lock_holds_only_for_that_username_and_address(client, artist, make_artist):
    fail(client, ARTIST_LOGIN, artist, LIMIT)
    other_artist = make_artist().user

    assert log_in(client, ARTIST_LOGIN, other_artist, PASSWORD).status_code == 302
    client.logout()
    elsewhere = Client(REMOTE_ADDR="192.0.2.80")
    assert log_in(elsewhere, ARTIST_LOGIN, artist, PASSWORD).status_code == 302


def test_behind_the_proxy_each_client_is_counted_apart(artist):
    assert settings.TRUSTED_PROXY_COUNT == 1
    proxy = "10.0.0.2"  # every request arrives from the proxy
    guesser = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.5")
    fail(guesser, ARTIST_LOGIN, artist, LIMIT)

    # The guesser cannot get out by writing an address of its own in front of the
    # proxy's entry: only the right-most entry, the proxy's, is believed.
    spoofed = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.5")
    assert log_in(spoofed, ARTIST_LOGIN, artist, PASSWORD).status_code == 429
    owner = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert log_in(owner, ARTIST_LOGIN, artist, PASSWORD).status_code == 302


def test_with_no_proxy_the_header_is_ignored(artist, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    for forged in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"):
        guesser = Client(REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR=forged)
        log_in(guesser, ARTIST_LOGIN, artist, "a wrong guess")

    again = Client(REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="203.0.113.99")

    assert log_in(again, ARTIST_LOGIN, artist, PASSWORD).status_code == 429


def test_production_throttles_logins_by_default():
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.AXES_ENABLED, settings.AXES_FAILURE_LIMIT, "
        "settings.AUTHENTICATION_BACKENDS[0], settings.MIDDLEWARE[-1])"
    )
    environment = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "events.settings",
        "SECRET_KEY": "a-production-secret",
        "SUMUP_CLIENT_ID": "client",
        "SUMUP_CLIENT_SECRET": "secret",
        "SUMUP_TOKEN_KEYS": "aBRe9bTSlE-pZ5N5tH1XWwFJ2UvQ5o5mQjv2Bq8Q6Ac=",
        "METRICS_TOKEN": "scrape-token-0123456789",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.WEBAPP_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True",
        "5",
        "axes.backends.AxesStandaloneBackend",
        "axes.middleware.AxesMiddleware",
    ]
