"""Fixtures for the operations tooling.

Backups are exercised as an operator runs them: manage.py in subprocesses against a
fresh SQLite file or a fresh PostgreSQL database (`ops_...`, dropped afterwards).
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from jobs.heartbeat import HeartbeatScheduler
from operations.heartbeat import HEARTBEAT_KEY, STARTED_KEY, write_heartbeat

REPO = Path(__file__).resolve().parents[2]
MANAGE = REPO / "webapp" / "manage.py"
SERVER_URL = "postgres://postgres@127.0.0.1:5432"
ADMIN_URL = f"{SERVER_URL}/postgres"

SEED = """
from accounts.models import ArtistProfile, User
for n in range(3):
    user = User.objects.create_user(
        username=f"artist{n}", email=f"artist{n}@example.com",
        password="correct horse battery staple", user_type="artist",
    )
    ArtistProfile.objects.create(user=user, display_name=f"Artist {n}")
ArtistProfile.objects.get(display_name="Artist 1").update_sumup_connection(
    {"access_token": "access-1", "refresh_token": "refresh-1", "expires_in": 3600}
)
"""
DATA = (
    "SELECT u.username, u.email, u.password, p.display_name, p.sumup_connection_status, "
    "p.sumup_access_token, p.sumup_refresh_token "
    "FROM accounts_user u LEFT JOIN accounts_artistprofile p ON p.user_id = u.id "
    "ORDER BY u.username"
)


@dataclass
class Site:
    """One database, the backup folder, and the commands an operator runs against them."""

    vendor: str
    database_url: str
    backups: Path
    sqlite_path: Path | None = None

    def manage(
        self, *args: str, env: dict[str, str] | None = None, stdin: str = "", ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            cwd=MANAGE.parent,
            env={
                **os.environ,
                "DATABASE_URL": self.database_url,
                "DJANGO_SETTINGS_MODULE": "events.settings",
                "BACKUP_DIR": str(self.backups),
                **(env or {}),
            },
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if ok:
            assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def sql(self, query: str) -> list[tuple[object, ...]]:
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as db:
                return db.execute(query).fetchall()
        with psycopg.connect(self.database_url, autocommit=True) as db:
            cursor = db.execute(query.encode())
            return cursor.fetchall() if cursor.description else []

    def backup(self, env: dict[str, str] | None = None) -> Path:
        out = self.manage("backup_db", env=env).stdout
        (line,) = [line for line in out.splitlines() if line.startswith("Backup:")]
        return Path(line.split(":", 1)[1].strip())

    def data(self) -> list[tuple[object, ...]]:
        return self.sql(DATA)

    def change_data(self) -> None:
        self.sql("DELETE FROM accounts_artistprofile WHERE display_name = 'Artist 2'")
        self.sql("UPDATE accounts_artistprofile SET display_name = 'Renamed' WHERE id > 0")
        self.sql("UPDATE accounts_user SET email = 'changed@example.com' WHERE id > 0")


def _new_name(kind: str) -> str:
    return f"ops_{kind}_{uuid.uuid4().hex[:12]}"


def _admin_sql(statement: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as db:
        db.execute(statement.encode())


@pytest.fixture
def empty_sqlite_site(tmp_path: Path) -> Site:
    """A SQLite site whose database file does not exist yet."""
    path = tmp_path / "site.sqlite3"
    return Site("sqlite", f"sqlite:///{path}", tmp_path / "backups", sqlite_path=path)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated and seeded once; each test gets a copy."""
    folder = tmp_path_factory.mktemp("sqlite_template")
    path = folder / "site.sqlite3"
    site = Site("sqlite", f"sqlite:///{path}", folder / "backups", sqlite_path=path)
    site.manage("migrate")
    site.manage("shell", "-c", SEED)
    return path


@pytest.fixture
def sqlite_site(empty_sqlite_site: Site, sqlite_template: Path) -> Site:
    """A migrated SQLite site with three artists, one connected to SumUp."""
    assert empty_sqlite_site.sqlite_path is not None
    shutil.copyfile(sqlite_template, empty_sqlite_site.sqlite_path)
    return empty_sqlite_site


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database migrated and seeded once, for CREATE DATABASE ... TEMPLATE."""
    name = _new_name("template")
    _admin_sql(f'CREATE DATABASE "{name}"')
    try:
        unused = tmp_path_factory.mktemp("postgres_template") / "backups"
        site = Site("postgresql", f"{SERVER_URL}/{name}", unused)
        site.manage("migrate")
        site.manage("shell", "-c", SEED)
        yield name
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_site(tmp_path: Path, postgres_template: str) -> Iterator[Site]:
    """A fresh PostgreSQL database (`ops_...`) with the seeded data, dropped afterwards."""
    name = _new_name("site")
    _admin_sql(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    try:
        yield Site("postgresql", f"{SERVER_URL}/{name}", tmp_path / "backups")
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest) -> Site:
    """A migrated site with three artists, on SQLite and on PostgreSQL."""
    fixture = "sqlite_site" if request.param == "sqlite" else "postgres_site"
    site: Site = request.getfixturevalue(fixture)
    return site


@pytest.fixture
def missing_postgres_site(tmp_path: Path) -> Site:
    """A site whose PostgreSQL database does not exist."""
    return Site("postgresql", f"{SERVER_URL}/{_new_name('missing')}", tmp_path / "backups")


SCRAPE_TOKEN = "scrape-token-for-the-tests-0123456789"


@pytest.fixture
def scraper(client: Client, settings: Any) -> Client:
    """The test client as the scraper: it presents METRICS_TOKEN, which /metrics and the
    details of /readyz's checks need."""
    settings.METRICS_TOKEN = SCRAPE_TOKEN
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {SCRAPE_TOKEN}"
    return client


@pytest.fixture
def heartbeat_redis() -> Iterator[redis.Redis]:
    """The Redis beat writes its heartbeat and start time to, clean before and after."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(HEARTBEAT_KEY, STARTED_KEY)
    yield client
    client.delete(HEARTBEAT_KEY, STARTED_KEY)
    client.close()


@pytest.fixture
def healthy_beat(heartbeat_redis: redis.Redis, transactional_db: None) -> HeartbeatScheduler:
    """Beat as it stands a while after it started: the schedule installed by the scheduler
    itself (committed, so health checks in other threads see it), every entry just run,
    and a fresh heartbeat."""
    from jobs import app

    scheduler = HeartbeatScheduler(app=app)
    PeriodicTask.objects.filter(name__in=settings.CELERY_BEAT_SCHEDULE).update(
        last_run_at=timezone.now()
    )
    write_heartbeat(heartbeat_redis)
    return scheduler
