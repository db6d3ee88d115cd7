"""`manage.py deploy` runs the plan's sequence on a database at 0002, in a subprocess,
and stops with the rollback command at the first failure."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
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
    assert "Deploy sequence complete." not in result.stdout
