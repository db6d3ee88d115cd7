"""A throwaway database (SQLite file or PostgreSQL database) driven by `manage.py` in
subprocesses, as an operator drives production, with the rows production holds."""

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent.parent
MANAGE = str(REPO / "webapp" / "manage.py")
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"

# Artists with everything the SumUp migrations added, and the campaigns history: what a
# rollback must keep, and what a repeated deploy must not touch.
SEED = """
from datetime import timedelta
from django.utils import timezone
from accounts.models import ArtistProfile, User
from campaigns.models import Campaign, CampaignAction, Recipient, Suppression

now = timezone.now()
campaign = Campaign.objects.create(name="Reconnect", status=Campaign.Status.DONE)
for i in range({artists}):
    user = User.objects.create_user(
        username=f"artist{{i}}", email=f"artist{{i}}@example.com", user_type="artist"
    )
    artist = ArtistProfile.objects.create(
        user=user,
        display_name=f"Artist {{i}}",
        sumup_business_name=f"Studio {{i}}",
        sumup_merchant_code=f"M{{i:05d}}",
        sumup_connection_status="connected",
        sumup_access_token="access",
        sumup_refresh_token="refresh",
        sumup_expires_at=now + timedelta(hours=1),
        sumup_token_version=3,
        sumup_refresh_failures=1,
        sumup_last_error="timeout",
        sumup_lapse_notified_at=now,
    )
    Recipient.objects.create(
        campaign=campaign, artist=artist, email=user.email, status=Recipient.Status.SENT
    )
    CampaignAction.objects.create(campaign=campaign, action="started", actor="staff")
for i in range(0, {artists}, 2):
    Suppression.objects.create(email=f"artist{{i}}@example.com", reason="unsubscribed")
"""


@dataclass
class DeployedDatabase:
    vendor: str
    url: str
    workdir: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.url, "BACKUP_DIR": str(self.backups)}

    @property
    def backups(self) -> Path:
        return self.workdir / "backups"

    def manage(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, MANAGE, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if ok:
            assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def seed(self, artists: int) -> None:
        self.manage("shell", "-c", SEED.format(artists=artists))

    def sql(self, query: str) -> list[tuple[object, ...]]:
        if self.vendor == "sqlite":
            with sqlite3.connect(self.workdir / "db.sqlite3") as db:
                return db.execute(query).fetchall()
        with psycopg.connect(self.url, autocommit=True) as db:
            cursor = db.execute(query)
            return cursor.fetchall() if cursor.description else []

    def tables(self) -> list[str]:
        if self.vendor == "sqlite":
            query = (
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        else:
            query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        return sorted(str(name) for (name,) in self.sql(query))

    def row_counts(self) -> dict[str, int]:
        return {
            table: int(self.sql(f'SELECT COUNT(*) FROM "{table}"')[0][0])  # type: ignore[call-overload]
            for table in self.tables()
        }

    def contents(self, table: str) -> list[tuple[object, ...]]:
        return sorted(self.sql(f'SELECT * FROM "{table}"'), key=repr)

    def columns(self, table: str) -> set[str]:
        if self.vendor == "sqlite":
            return {str(row[1]) for row in self.sql(f"PRAGMA table_info({table})")}
        rows = self.sql(
            f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'"
        )
        return {str(name) for (name,) in rows}


@contextmanager
def deployed_database(vendor: str, workdir: Path) -> Iterator[DeployedDatabase]:
    if vendor == "sqlite":
        yield DeployedDatabase("sqlite", f"sqlite:///{workdir / 'db.sqlite3'}", workdir)
        return
    name = f"deploy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    try:
        yield DeployedDatabase("postgresql", f"postgres://postgres@127.0.0.1:5432/{name}", workdir)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
