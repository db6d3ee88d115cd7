"""`manage.py deploy` runs the plan's sequence on a database at 0002, in a subprocess,
and stops with the rollback command at the first failure. It reads the migration plan
first: it never unapplies, and a second run on a populated database changes nothing."""

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from operations import migration_plan

if TYPE_CHECKING:
    from tests.support.deployed_database import deployed_database
else:
    from support.deployed_database import deployed_database

REPO = Path(__file__).resolve().parents[2]
MANAGE = str(REPO / "webapp" / "manage.py")


def manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "BACKUP_DIR": str(tmp_path / "backups"),
    }
    return subprocess.run(
        [sys.executable, MANAGE, *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_deploy_backs_up_migrates_verifies_and_checks_health(tmp_path):
    assert manage(tmp_path, "migrate", "accounts", "0002_emailverificationtoken").returncode == 0

    result = manage(tmp_path, "deploy")

    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("Step 1", "Step 2", "Step 3: migrate accounts 0004", "Step 4", "Step 8: health"):
        assert step in result.stdout
    assert "All SumUp migration checks passed." in result.stdout
    assert "Deploy sequence complete." in result.stdout
    assert list((tmp_path / "backups").rglob("*.sqlite3")), "a backup was written"


def test_deploy_stops_at_the_first_failure_with_the_rollback_command(tmp_path):
    assert manage(tmp_path, "migrate", "accounts", "0002_emailverificationtoken").returncode == 0
    env_broken = {"REDIS_URL": "redis://127.0.0.1:1/0"}  # health will fail: nothing listens there
    result = subprocess.run(
        [sys.executable, MANAGE, "deploy"],
        env={
            **os.environ,
            **env_broken,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "BACKUP_DIR": str(tmp_path / "backups"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "Step 8: health failed" in result.stderr
    assert "migrate accounts 0002_emailverificationtoken" in result.stderr
    assert "keeps every artist, user, campaign, recipient, suppression" in result.stderr
    assert "Deploy sequence complete." not in result.stdout


def test_deploy_plan_prints_each_migration_in_order_and_changes_nothing(tmp_path):
    assert manage(tmp_path, "migrate", "accounts", "0002_emailverificationtoken").returncode == 0

    result = manage(tmp_path, "deploy", "--plan")

    assert result.returncode == 0, result.stdout + result.stderr
    applies = [line.strip() for line in result.stdout.splitlines() if "apply " in line]
    assert applies[:3] == [
        "apply accounts.0003_add_sumup_oauth_fields",
        "apply backfills.0001_initial",
        "apply accounts.0004_migrate_existing_artists_to_sumup",
    ]
    sumup = [line for line in applies if line.startswith("apply accounts.")]
    assert sumup[-5:] == [
        "apply accounts.0006_sumup_business_name_and_unique_merchant",
        "apply accounts.0007_sumup_refresh_bookkeeping",
        "apply accounts.0005_finalize_sumup_connection_status",
        "apply accounts.0008_plain_words_for_sumup_status",
        "apply accounts.0009_sumup_refresh_due_at",
    ]
    assert "apply campaigns.0001_initial" in applies
    assert "Step 1" not in result.stdout
    assert not (tmp_path / "backups").exists(), "no backup is taken"
    shown = manage(tmp_path, "showmigrations", "accounts").stdout
    assert "[ ] 0003_add_sumup_oauth_fields" in shown


def test_deploy_twice_on_a_populated_database_changes_nothing_the_second_time(tmp_path):
    with deployed_database("postgresql", tmp_path) as d:
        d.manage("migrate", "accounts", "0002_emailverificationtoken")
        first = d.manage("deploy")
        assert "Deploy sequence complete." in first.stdout
        d.seed(artists=20)
        counts = d.row_counts()
        kept = [t for t in counts if t.startswith(("accounts_", "campaigns_", "backfills_"))]
        contents = {table: d.contents(table) for table in kept}
        assert counts["campaigns_recipient"] == 20
        assert counts["campaigns_suppression"] == 10

        planned = d.manage("deploy", "--plan").stdout
        second = d.manage("deploy")

        assert "Nothing to apply: the database is up to date." in planned
        assert "skipped, accounts.0003_add_sumup_oauth_fields is applied" in second.stdout
        assert "Step 3: migrate accounts 0003\n" not in second.stdout
        assert "Unapplying" not in second.stdout
        assert "Deploy sequence complete." in second.stdout
        assert d.row_counts() == counts
        assert {table: d.contents(table) for table in kept} == contents


def test_deploy_refuses_an_inconsistent_history_before_the_backup(tmp_path):
    with deployed_database("sqlite", tmp_path) as d:
        d.manage("migrate")
        d.seed(artists=3)
        d.sql(
            "DELETE FROM django_migrations "
            "WHERE app = 'accounts' AND name = '0006_sumup_business_name_and_unique_merchant'"
        )
        counts = d.row_counts()

        refused = d.manage("deploy", ok=False)

        assert refused.returncode != 0
        assert "Refused" in refused.stderr
        assert "accounts.0007_sumup_refresh_bookkeeping is applied before its dependency" in (
            refused.stderr
        )
        assert "Nothing ran: no backup, no migration, no change." in refused.stderr
        assert "Step 1" not in refused.stdout
        assert not d.backups.exists()
        assert d.row_counts() == counts


@pytest.mark.django_db
def test_a_targeted_migrate_on_a_migrated_database_is_a_backwards_plan_and_refused():
    target = ("accounts", "0003_add_sumup_oauth_fields")

    (step,) = migration_plan.plan([("migrate accounts 0003", target)])

    assert step.migrations == []
    assert set(step.unapplies) == {
        ("accounts", "0004_migrate_existing_artists_to_sumup"),
        ("accounts", "0005_finalize_sumup_connection_status"),
        ("accounts", "0006_sumup_business_name_and_unique_merchant"),
        ("accounts", "0007_sumup_refresh_bookkeeping"),
        ("accounts", "0008_plain_words_for_sumup_status"),
        ("accounts", "0009_sumup_refresh_due_at"),
    }, "campaigns depend on no SumUp migration, so they are not unapplied with them"
    with pytest.raises(migration_plan.BackwardsPlanError) as refused:
        migration_plan.refuse_backwards([step])
    assert "accounts.0007_sumup_refresh_bookkeeping" in str(refused.value)
    assert target in migration_plan.applied_migrations(), "planning applies nothing"
