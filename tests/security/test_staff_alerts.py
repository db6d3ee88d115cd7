"""Mail to staff: a crash mails ADMINS once per kind of error and window, redacted and
without any setting; what anyone can cause with a request (a Host outside ALLOWED_HOSTS,
a failed webhook login, a bearer token that is not ASCII, /readyz answering 503) is a
logged warning and mails no one. Mail goes through anymail's Brevo backend to the fake
Brevo on loopback, which records what it accepts."""

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from events.urls import urlpatterns as site_urlpatterns
from fakes.brevo import FakeBrevo

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

REDIS_PASSWORD = "hunter2-redis-password"
SECRET_KEY = "a-production-secret-key-for-this-test"
CLIENT_SECRET = "sumup-client-secret-for-this-test"
WEBHOOK_LOGIN = "anymail:webhook-password-for-this-test"
METRICS_TOKEN = "metrics-token-for-this-test-0123456789"


def crash(request: HttpRequest, n: int) -> HttpResponse:
    raise RuntimeError(f"the view broke talking to {settings.REDIS_URL}")


def other_crash(request: HttpRequest) -> HttpResponse:
    raise LookupError("another bug")


urlpatterns = [
    *site_urlpatterns,
    path("crash/<int:n>", crash),
    path("other-crash", other_crash),
]


@pytest.fixture
def esp(settings: Any) -> Iterator[FakeBrevo]:
    """Staff to mail, settings holding secrets, and the fake provider that mail reaches."""
    with FakeBrevo() as fake:
        settings.EMAIL_BACKEND = FakeBrevo.BACKEND
        settings.ANYMAIL = {**fake.anymail_settings(), "WEBHOOK_SECRET": [WEBHOOK_LOGIN]}
        settings.ADMINS = ["Ops <ops@example.com>"]
        settings.REDIS_URL = f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"  # nothing listens
        settings.SECRET_KEY = SECRET_KEY
        settings.SUMUP_CLIENT_SECRET = CLIENT_SECRET
        cache.clear()  # the alert counts of earlier tests
        yield fake


@pytest.fixture
def anonymous() -> Client:
    return Client(raise_request_exception=False)


def _bad_host(client: Client) -> Any:
    return client.get("/healthz", HTTP_HOST="attacker.example")


def _readyz_while_redis_is_down(client: Client) -> Any:
    return client.get("/readyz")  # REDIS_URL points at a closed port


def _failed_webhook_login(client: Client) -> Any:
    wrong = base64.b64encode(b"anymail:guessed").decode()
    return client.post(
        "/email/tracking/",
        data="[]",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {wrong}",
    )


def _bearer_that_is_not_ascii(client: Client) -> Any:
    return client.get("/metrics", HTTP_AUTHORIZATION="Bearer jeton-périmé-à-deviner")


ANONYMOUS_REQUESTS: list[tuple[Callable[[Client], Any], int, str | None]] = [
    (_bad_host, 400, "django.security.DisallowedHost"),
    (_readyz_while_redis_is_down, 503, "django.request"),
    (_failed_webhook_login, 400, "django.security.AnymailWebhookValidationFailure"),
    # 4xx are warnings by Django's own rule, under LOG_LEVEL's threshold for requests.
    (_bearer_that_is_not_ascii, 401, None),
]


@pytest.mark.parametrize(
    ("request_", "status", "warned_by"),
    ANONYMOUS_REQUESTS,
    ids=[make.__name__.lstrip("_") for make, _, _ in ANONYMOUS_REQUESTS],
)
def test_what_anyone_can_cause_is_a_warning_and_mails_no_one(
    request_, status, warned_by, esp, anonymous, settings, caplog
):
    settings.METRICS_TOKEN = METRICS_TOKEN

    response = request_(anonymous)

    assert response.status_code == status
    assert esp.state.accepted == []
    logged = [(r.name, r.levelname) for r in caplog.records if r.name.startswith("django")]
    assert [(name, level) for name, level in logged if level in ("ERROR", "CRITICAL")] == []
    if warned_by is not None:
        assert (warned_by, "WARNING") in logged


def test_a_crash_mails_staff_once_without_any_setting(esp, anonymous):
    assert anonymous.get("/crash/1").status_code == 500

    [alert] = esp.state.accepted
    sent = alert.subject + alert.text + alert.html
    for setting_value in (REDIS_PASSWORD, SECRET_KEY, CLIENT_SECRET, "INSTALLED_APPS"):
        assert setting_value not in sent
    assert alert.to == "ops@example.com"
    assert alert.subject.endswith("ERROR: Internal Server Error: /crash/1")
    assert "RuntimeError: the view broke talking to redis://:[REDACTED]@127.0.0.1:1/0" in alert.text
    assert "Request: GET /crash/1" in alert.text

    # The same bug again, at another URL, within the window: logged, not mailed.
    assert anonymous.get("/crash/2").status_code == 500
    assert len(esp.state.accepted) == 1


def test_another_kind_of_error_mails_staff_in_the_same_window(esp, anonymous):
    anonymous.get("/crash/1")
    anonymous.get("/other-crash")
    anonymous.get("/crash/3")

    subjects = [alert.subject for alert in esp.state.accepted]
    assert len(subjects) == 2
    assert subjects[1].endswith("ERROR: Internal Server Error: /other-crash")


def test_a_crash_is_logged_but_not_mailed_while_the_alert_count_is_unreachable(
    esp, anonymous, settings, caplog
):
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens
        }
    }

    assert anonymous.get("/crash/1").status_code == 500

    assert esp.state.accepted == []
    errors = [r for r in caplog.records if r.name == "django.request"]
    assert [r.levelname for r in errors] == ["ERROR"]
    assert any(
        r.name == "events.staff_alerts"
        and "the alert count in the cache is unreachable" in r.getMessage()
        for r in caplog.records
    )
