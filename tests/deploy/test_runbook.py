"""The deployment runbook's Steps 2-6, run to the letter on SQLite and on PostgreSQL.

Each test takes a fresh database to `accounts.0002_emailverificationtoken`, fills it with
artists as production has them, and then runs the runbook's own commands, SQL, script and
shell session in subprocesses, as an operator would.
"""

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
MANAGE = REPO / "webapp" / "manage.py"
RUNBOOK = Path(__file__).resolve().parents[1] / "runbook"
ARTISTS = 3_000
SUMUP_COLUMNS = {
    "sumup_access_token",
    "sumup_refresh_token",
    "sumup_token_type",
    "sumup_expires_at",
    "sumup_scope",
    "sumup_merchant_code",
    "sumup_connected_at",
    "sumup_connection_status",
}


@dataclass
class Deployment:
    """One database, and the commands an operator runs against it."""

    vendor: str
    database_url: str
    sqlite_path: Path | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DJANGO_SETTINGS_MODULE": "events.settings",
        }

    def run(
        self, *args: str, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, *args],
            cwd=MANAGE.parent,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if ok:
            assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def manage(
        self, *args: str, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(str(MANAGE), *args, stdin=stdin, ok=ok)

    def sql(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as db:
                return db.execute(query, params).fetchall()
        with psycopg.connect(self.database_url, autocommit=True) as db:
            cursor = db.execute(query.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def columns(self, table: str) -> dict[str, str]:
        if self.vendor == "sqlite":
            return {
                str(row[1]): str(row[2]).lower() for row in self.sql(f"PRAGMA table_info({table})")
            }
        rows = self.sql(
            "SELECT column_name, data_type, character_maximum_length, is_nullable "
            "FROM information_schema.columns WHERE table_name = ?",
            (table,),
        )
        return {
            str(name): f"{kind}({length})" if length else str(kind)
            for name, kind, length, _ in rows
        }

    def seed_artists_at_0002(self, count: int) -> None:
        """Artists as they exist before the SumUp columns, written with plain SQL."""
        users = [
            (
                "!",
                f"artist{i}",
                "",
                "",
                f"artist{i}@example.com",
                False,
                True,
                False,
                "2025-01-01 00:00:00+00",
                "artist",
                "",
                True,
            )
            for i in range(count)
        ]
        insert_user = (
            "INSERT INTO accounts_user (password, username, first_name, last_name, email, "
            "is_superuser, is_active, is_staff, date_joined, user_type, phone, email_verified) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        insert_profile = (
            "INSERT INTO accounts_artistprofile (user_id, display_name, bio, business_name, "
            "is_approved, created_at, updated_at) "
            "SELECT id, 'Artist ' || username, '', '', (id % 2 = 0), date_joined, date_joined "
            "FROM accounts_user WHERE user_type = 'artist'"
        )
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as db:
                db.executemany(insert_user, users)
                db.execute(insert_profile)
            return
        with psycopg.connect(self.database_url) as pg, pg.cursor() as cursor:
            cursor.executemany(insert_user.replace("?", "%s"), users)
            cursor.execute(insert_profile)

    def artist_count(self) -> int:
        (count,) = self.sql("SELECT COUNT(*) FROM accounts_artistprofile")[0]
        assert isinstance(count, int)
        return count


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    if request.param == "sqlite":
        path = tmp_path / "db.sqlite3"
        yield Deployment("sqlite", f"sqlite:///{path}", sqlite_path=path)
        return
    name = f"runbook_{uuid.uuid4().hex[:12]}"
    admin_url = "postgres://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Deployment("postgresql", f"postgres://postgres@127.0.0.1:5432/{name}")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def at_0002(deployment: Deployment) -> Deployment:
    deployment.manage("migrate", "accounts", "0002_emailverificationtoken")
    for app in ("admin", "sessions"):
        deployment.manage("migrate", app)
    deployment.seed_artists_at_0002(ARTISTS)
    return deployment


def test_the_runbook_steps_2_to_6_print_what_it_expects(at_0002: Deployment) -> None:
    d = at_0002

    # Step 2: the two SumUp migrations are new, and nothing else is pending.
    shown = d.manage("showmigrations", "accounts").stdout
    assert "[X] 0001_initial" in shown
    assert "[X] 0002_emailverificationtoken" in shown
    assert "[ ] 0003_add_sumup_oauth_fields" in shown
    assert "[ ] 0004_migrate_existing_artists_to_sumup" in shown
    assert "No changes detected" in d.manage("makemigrations", "--dry-run", "--check").stdout

    # Step 3: the schema migration, then the data migration, then the rest.
    d.manage("migrate", "accounts", "0003_add_sumup_oauth_fields", "--verbosity=2")
    assert "[X] 0003_add_sumup_oauth_fields" in d.manage("showmigrations", "accounts").stdout
    nulls = d.sql(
        "SELECT COUNT(*) FROM accounts_artistprofile WHERE sumup_connection_status IS NULL"
    )
    assert nulls[0][0] == ARTISTS, "existing rows read NULL until the data migration"
    d.manage("migrate", "accounts", "0004_migrate_existing_artists_to_sumup", "--verbosity=2")
    d.manage("migrate", "--verbosity=2")

    # Step 4: the new columns, with the runbook's types and lengths.
    columns = d.columns("accounts_artistprofile")
    assert set(columns) >= SUMUP_COLUMNS
    if d.vendor == "sqlite":
        expected = {
            "sumup_access_token": "text",
            "sumup_token_type": "varchar(20)",
            "sumup_expires_at": "datetime",
            "sumup_scope": "varchar(255)",
            "sumup_merchant_code": "varchar(50)",
            "sumup_connection_status": "varchar(20)",
        }
    else:
        expected = {
            "sumup_access_token": "text",
            "sumup_token_type": "character varying(20)",
            "sumup_expires_at": "timestamp with time zone",
            "sumup_scope": "character varying(255)",
            "sumup_merchant_code": "character varying(50)",
            "sumup_connection_status": "character varying(20)",
        }
    assert {name: columns[name] for name in expected} == expected

    # Step 4: the runbook's three SQL integrity tests, as written.
    queries = [
        q.strip()
        for q in (RUNBOOK / "integrity_checks.sql").read_text().split(";")
        if "SELECT" in q
    ]
    assert len(queries) == 3
    assert d.sql(queries[0]) == [(ARTISTS, ARTISTS)]
    assert d.sql(queries[1]) == [(0,)]
    assert d.sql(queries[2]) == [(0,)]

    # Step 4: the runbook's verification script, unchanged, and our command for it.
    script = d.run(str(RUNBOOK / "verify_migration.py"))
    assert f"📊 Total Artists: {ARTISTS}" in script.stdout
    assert f"📊 Not Connected: {ARTISTS}" in script.stdout
    assert "✅ All artists properly migrated to 'not_connected' status" in script.stdout
    assert "🎉 All verification tests passed!" in script.stdout
    verified = d.manage("verify_sumup_migration")
    assert f"All {ARTISTS} artists have status 'not_connected'." in verified.stdout

    # Step 5: the Django shell session prints what its comments expect.
    session = d.manage("shell", stdin=(RUNBOOK / "shell_session.py").read_text())
    printed = [
        line for line in session.stdout.splitlines() if line.startswith(("Connected:", "Status:"))
    ]
    assert printed == ["Connected: False", "Status: not_connected", "Connected: True"]
    assert d.artist_count() == ARTISTS, "the session cleans up its test artist"

    # Step 6: roll back in reverse order; every artist is kept, the columns are gone.
    d.manage("migrate", "accounts", "0003_add_sumup_oauth_fields", "--verbosity=2")
    d.manage("migrate", "accounts", "0002_emailverificationtoken", "--verbosity=2")
    shown = d.manage("showmigrations", "accounts").stdout
    assert "[X] 0002_emailverificationtoken" in shown
    assert "[ ] 0003_add_sumup_oauth_fields" in shown
    assert not SUMUP_COLUMNS & set(d.columns("accounts_artistprofile"))
    assert d.artist_count() == ARTISTS

    # And forward again, as a retried deploy would.
    d.manage("migrate")
    assert (
        f"All {ARTISTS} artists have status 'not_connected'."
        in d.manage("verify_sumup_migration").stdout
    )


def test_the_finalizing_migration_refuses_while_a_status_is_null(at_0002: Deployment) -> None:
    d = at_0002
    d.manage("migrate", "accounts", "0004_migrate_existing_artists_to_sumup")
    d.sql(
        "UPDATE accounts_artistprofile SET sumup_connection_status = NULL "
        "WHERE id IN (SELECT id FROM accounts_artistprofile ORDER BY id LIMIT 3)"
    )

    refused = d.manage("migrate", "accounts", ok=False)
    assert refused.returncode != 0
    assert "still holds NULL in 3 row(s)" in refused.stderr
    assert (
        "[ ] 0005_finalize_sumup_connection_status" in d.manage("showmigrations", "accounts").stdout
    )

    failed = d.manage("verify_sumup_migration", ok=False)
    assert failed.returncode == 1
    assert "3 artist(s) with NULL connection status" in failed.stdout


def test_verification_fails_when_a_not_connected_artist_still_holds_a_token(
    at_0002: Deployment,
) -> None:
    d = at_0002
    d.manage("migrate")
    d.sql(
        "UPDATE accounts_artistprofile SET sumup_refresh_token = 'stale' "
        "WHERE id = (SELECT MAX(id) FROM accounts_artistprofile)"
    )
    failed = d.manage("verify_sumup_migration", ok=False)
    assert failed.returncode == 1
    assert "1 not-connected artist(s) still hold a token" in failed.stdout

    # A token no configured key can read is reported, not a crash.
    d.sql(
        "UPDATE accounts_artistprofile SET sumup_access_token = 'not-ciphertext' "
        "WHERE id = (SELECT MIN(id) FROM accounts_artistprofile)"
    )
    failed = d.manage("verify_sumup_migration", ok=False)
    assert failed.returncode == 1
    assert "FAIL Model methods work: TokenDecryptionError" in failed.stdout
