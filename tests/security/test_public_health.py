"""What the platform's own endpoints tell a stranger: /readyz answers "ok" or "fail" per
check and nothing more; the detail of each (hosts, services, errors) and /metrics need
METRICS_TOKEN as a Bearer token, compared as bytes so any header gets a clear answer."""

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-for-this-test-0123456789"
CHECKS = {"database", "redis", "migrations", "worker", "beat", "schedule"}
# Nothing listens here; the failures name this address and "Connection refused".
CLOSED_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_down(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.REDIS_URL = CLOSED_REDIS


def test_readyz_tells_the_public_only_ok_or_fail_per_check(client: Client, redis_down: None):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert set(body["checks"]) == CHECKS
    assert set(body["checks"].values()) <= {"ok", "fail"}
    assert body["checks"]["redis"] == "fail" and body["checks"]["database"] == "ok"
    for internal in ("127.0.0.1", "Connection refused", "Error", "heartbeat", "ms"):
        assert internal not in response.text


def test_readyz_gives_each_checks_detail_to_the_scraper(client: Client, redis_down: None):
    response = client.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 503
    redis = response.json()["checks"]["redis"]
    assert redis["ok"] is False and "Connection refused" in redis["detail"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer jeton-périmé-à-deviner",
        "Bearer " + TOKEN[:-1] + "é",
        "Bearer ",
        "Basic " + TOKEN,
        TOKEN,
        "bearer\u00a0" + TOKEN,
    ],
)
def test_a_wrong_bearer_of_any_kind_gets_the_public_answer_and_no_metrics(
    client: Client, redis_down: None, authorization: str
):
    ready = client.get("/readyz", HTTP_AUTHORIZATION=authorization)
    metrics = client.get("/metrics", HTTP_AUTHORIZATION=authorization)

    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "fail"
    assert metrics.status_code == 401
    assert metrics["WWW-Authenticate"].startswith("Bearer")
    assert b"jersey_" not in metrics.content


def test_metrics_are_shut_while_no_token_is_configured(client: Client, settings: Any):
    settings.METRICS_TOKEN = ""

    for authorization in ("", "Bearer ", "Bearer anything-at-all-0123456789"):
        response = client.get("/metrics", HTTP_AUTHORIZATION=authorization)
        assert response.status_code == 401
        assert b"jersey_" not in response.content


def test_the_token_opens_the_metrics(client: Client, settings: Any):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert b"jersey_sumup_connections" in response.content
