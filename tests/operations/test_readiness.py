"""/readyz: 200 only when the whole deployment can work, and an answer even when a
dependency hangs or is gone."""

import socket
import threading
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from operations import readiness
from operations.heartbeat import write_heartbeat

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _as_the_scraper(scraper):
    """These tests read each check's detail, which /readyz gives the scraper only
    (tests/security/test_public_health.py has what everyone else sees)."""


@pytest.fixture
def fresh_heartbeat(heartbeat_redis):
    write_heartbeat(heartbeat_redis)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog does) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        listener.close()


def _checks(response) -> dict[str, dict[str, object]]:
    body = response.json()
    assert set(body) == {"status", "checks"}
    checks: dict[str, dict[str, object]] = body["checks"]
    assert set(checks) == {"database", "redis", "migrations", "worker", "beat", "schedule"}
    for check in checks.values():
        assert set(check) == {"ok", "detail", "ms"}
        assert isinstance(check["ms"], float)
    return checks


@pytest.mark.django_db(transaction=True)
def test_readyz_is_200_when_a_worker_answers_and_beat_is_fresh(
    client, project_worker, healthy_beat
):
    response = client.get("/readyz")

    checks = _checks(response)
    assert response.status_code == 200, checks
    assert response.json()["status"] == "ok"
    assert all(check["ok"] for check in checks.values())
    assert checks["database"]["detail"] == "SELECT 1 answered"
    assert checks["redis"]["detail"] == "PING answered"
    assert checks["migrations"]["detail"] == "all applied"
    assert str(checks["worker"]["detail"]).endswith("answered a ping")
    assert str(checks["beat"]["detail"]).startswith("last heartbeat ")
    assert checks["schedule"]["detail"] == "every entry scheduled and on time"
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_readyz_is_503_when_redis_refuses_connections(client, settings, fresh_heartbeat):
    settings.REDIS_URL = CLOSED_PORT_REDIS

    response = client.get("/readyz")

    checks = _checks(response)
    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert checks["redis"]["ok"] is False
    assert "Connection refused" in str(checks["redis"]["detail"])
    assert checks["beat"]["ok"] is False
    assert "Connection refused" in str(checks["beat"]["detail"])
    assert checks["database"]["ok"] and checks["migrations"]["ok"]


@pytest.mark.django_db
def test_readyz_is_503_when_no_worker_answers(client, monkeypatch, fresh_heartbeat):
    # The broker is up but no worker consumes from it (Celery reads this variable first).
    monkeypatch.setenv("CELERY_BROKER_URL", settings.REDIS_URL)

    response = client.get("/readyz")

    checks = _checks(response)
    assert response.status_code == 503
    assert checks["worker"] == {
        "ok": False,
        "detail": "no worker answered a ping within 1 s",
        "ms": checks["worker"]["ms"],
    }
    assert all(checks[name]["ok"] for name in ("database", "redis", "migrations", "beat"))


@pytest.mark.django_db
def test_readyz_answers_when_redis_and_the_broker_hang(
    client, settings, monkeypatch, silent_server
):
    settings.REDIS_URL = silent_server
    monkeypatch.setenv("CELERY_BROKER_URL", silent_server)

    response = client.get("/readyz")

    checks = _checks(response)
    assert response.status_code == 503
    for name in ("redis", "beat", "worker"):
        assert checks[name]["ok"] is False
        detail = str(checks[name]["detail"]).lower()
        assert "timed out" in detail or "timeout" in detail, (name, detail)
    assert checks["database"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_while_a_migration_is_unapplied(client, project_worker, fresh_heartbeat):
    recorder = MigrationRecorder(connection)
    # The app's last migration in the graph (numbers do not give the order: 0005 comes after 0007).
    [(app, name)] = MigrationLoader(connection).graph.leaf_nodes("accounts")
    recorder.record_unapplied(app, name)
    try:
        response = client.get("/readyz")
    finally:
        recorder.record_applied(app, name)

    checks = _checks(response)
    assert response.status_code == 503
    assert checks["migrations"] == {
        "ok": False,
        "detail": f"1 unapplied: {app}.{name}",
        "ms": checks["migrations"]["ms"],
    }


def test_a_check_that_hangs_is_reported_as_timed_out_and_not_started_twice():
    release = threading.Event()
    calls: list[int] = []

    def stuck() -> str:
        calls.append(1)
        release.wait(10)
        return "finally"

    checks = [
        readiness.Check("stuck", stuck, target="test", timeout=0.2),
        readiness.Check("quick", lambda: "fine", target="test", timeout=0.2),
    ]
    try:
        first = readiness.run_checks(checks)
        second = readiness.run_checks(checks)
    finally:
        release.set()

    assert first["stuck"].ok is False and first["stuck"].detail == "timed out"
    assert first["quick"].ok is True and first["quick"].detail == "fine"
    assert second["stuck"].detail == "timed out"
    assert calls == [1], "the second run waits on the attempt still in flight"


def test_a_failed_check_never_shows_a_password(settings):
    settings.REDIS_URL = "redis://:s3cret-pw@127.0.0.1:1/0"

    def leaky() -> str:
        raise RuntimeError(f"could not connect to {settings.REDIS_URL}")

    results = readiness.run_checks([readiness.Check("leaky", leaky, target="test")])

    assert (
        results["leaky"].detail == "RuntimeError: could not connect to redis://:***@127.0.0.1:1/0"
    )
