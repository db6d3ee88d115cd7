"""Shared fixtures. The suite runs on the real PostgreSQL and Redis; a missing service
stops the run at once with what to start, rather than skipping tests."""

import gc
import importlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.db import connection

from accounts.models import ArtistProfile, User
from events.logging import RedactSecrets
from fakes.sumup import FakeSumUp

TEST_REDIRECT_URI = "http://testserver/accounts/sumup/callback/"

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = (
    "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no"
)


def _require_services() -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.exit(
            "The suite runs on PostgreSQL: run it with `make test`, or set DATABASE_URL "
            "(e.g. postgres://postgres@127.0.0.1:5432/test).",
            returncode=2,
        )
    try:
        psycopg.connect(
            host=database["HOST"] or "127.0.0.1",
            port=int(database["PORT"] or 5432),
            user=database["USER"],
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as exc:
        pytest.exit(f"PostgreSQL is not reachable ({exc}). Start it: {START_POSTGRES}", 2)
    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis is not reachable ({exc}). Start it: {START_REDIS}", 2)


def pytest_sessionstart(session: pytest.Session) -> None:
    _require_services()


@pytest.fixture
def make_artist(db: None) -> Callable[..., ArtistProfile]:
    counter = iter(range(1, 1_000_000))

    def make(**profile_fields: Any) -> ArtistProfile:
        n = next(counter)
        user = User.objects.create_user(
            username=f"artist{n}",
            email=f"artist{n}@example.com",
            password="correct horse battery staple",
            user_type=User.UserType.ARTIST,
        )
        profile_fields.setdefault("display_name", f"Artist {n}")
        return ArtistProfile.objects.create(user=user, **profile_fields)

    return make


@pytest.fixture(scope="session", autouse=True)
def _tasks_known_here() -> None:
    """This process runs tasks too (inline where a test makes them eager, and in
    `project_worker`'s thread): like a worker, it loads every task module, so a task
    queued by name (events.queue) runs here rather than waiting in Redis for a worker."""
    from jobs import app

    for module in app.conf.include:
        importlib.import_module(module)


@pytest.fixture(scope="session")
def project_worker(django_db_setup: None, django_db_blocker: Any) -> Iterator[Any]:
    """A real Celery worker for the project's own app, consuming from the test Redis.

    It runs in a thread of this process against the test database, so tests that use it
    must be `django_db(transaction=True)` to see each other's committed rows.
    """
    from jobs import app

    with (
        django_db_blocker.unblock(),
        start_worker(
            app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
        ) as worker,
    ):
        yield worker
    # The worker's thread kept its database connection between tasks
    # (DATABASE_CONN_MAX_AGE); the thread is gone, and collecting what it left closes the
    # connection, so the test database can be dropped.
    gc.collect()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2's cost is the point in production and pure waiting in tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may set variables; never let one leak into the next.
    for name in list(os.environ):
        if name.startswith("ANYMAIL_"):
            monkeypatch.delenv(name)


class LogRecorder(logging.Handler):
    """Every log line of the run, as the production handlers would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RedactSecrets())
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="session", autouse=True)
def log_recorder() -> Iterator[LogRecorder]:
    root = logging.getLogger()
    for handler in root.handlers:  # the console stays at its level
        handler.setLevel(max(handler.level, root.level))
    recorder = LogRecorder()
    previous = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)  # so third-party DEBUG lines (Authlib, urllib3) are seen too
    yield recorder
    root.removeHandler(recorder)
    root.setLevel(previous)


@pytest.fixture(scope="session")
def sumup_server() -> Iterator[FakeSumUp]:
    """One fake SumUp on loopback for the whole run; `sumup` resets it per test."""
    with FakeSumUp(redirect_uris=[TEST_REDIRECT_URI]) as fake:
        yield fake


@pytest.fixture
def sumup(sumup_server: FakeSumUp, settings: Any, log_recorder: LogRecorder) -> Iterator[FakeSumUp]:
    """The fake SumUp, fresh, with the site configured to use it."""
    sumup_server.reset()
    settings.SUMUP_BASE_URL = sumup_server.base_url
    settings.SUMUP_API_URL = sumup_server.api_url
    settings.SUMUP_CLIENT_ID = "jersey-events-local"
    settings.SUMUP_CLIENT_SECRET = "local-secret"
    settings.SUMUP_REDIRECT_URI = TEST_REDIRECT_URI
    logged_before = len(log_recorder.lines)
    yield sumup_server
    # Whatever the test did, no token the fake issued may appear in a log line.
    state = sumup_server.state
    secrets = [*state.access_tokens, *state.refresh_tokens, *state.codes]
    logged = "\n".join(log_recorder.lines[logged_before:])
    leaked = [secret[:6] + "..." for secret in secrets if secret in logged]
    sumup_server.reset()
    assert not leaked, f"tokens issued by SumUp appeared in the log: {leaked}"


@pytest.fixture
def legacy_artists(db: None) -> Iterator[Any]:
    """Artists as they were before 0004 ran: status NULL (the column is made nullable for
    the test and NOT NULL again afterwards)."""

    def make(count: int) -> list[int]:
        users = User.objects.bulk_create(
            User(username=f"legacy{i}", email=f"legacy{i}@example.com", user_type="artist")
            for i in range(count)
        )
        profiles = ArtistProfile.objects.bulk_create(
            ArtistProfile(user=user, display_name=user.username) for user in users
        )
        ids = [profile.pk for profile in profiles]
        ArtistProfile.objects.filter(pk__in=ids).update(sumup_connection_status=None)
        return ids

    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE accounts_artistprofile ALTER COLUMN sumup_connection_status DROP NOT NULL"
        )
    yield make
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER refuses pending FK checks
        cursor.execute(
            "UPDATE accounts_artistprofile SET sumup_connection_status = 'not_connected' "
            "WHERE sumup_connection_status IS NULL"
        )
        cursor.execute(
            "ALTER TABLE accounts_artistprofile ALTER COLUMN sumup_connection_status SET NOT NULL"
        )
