"""backup_db and restore_db, run as an operator runs them, on SQLite and PostgreSQL."""

import hashlib
import json
import os
import stat
from pathlib import Path

from django.db.migrations.loader import MigrationLoader

from accounts.sumup import crypto


def _manifest(backup: Path) -> dict[str, object]:
    loaded = json.loads(backup.with_name(backup.name + ".manifest.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def test_it_restores_what_it_backed_up(site) -> None:
    before = site.data()
    backup = site.backup()
    site.change_data()
    assert site.data() != before

    restored = site.manage("restore_db", str(backup), "--yes")

    assert site.data() == before
    assert "OK   Migration state" in restored.stdout
    assert "OK   Row counts:" in restored.stdout
    assert "Restore complete; the database matches the backup." in restored.stdout
    assert "OK   Token keys: the SumUp tokens of all 1 connected artist(s) decrypt" in (
        restored.stdout
    )
    # The restored ciphertext still opens with the configured key.
    token = site.manage(
        "shell",
        "-c",
        "from accounts.models import ArtistProfile; "
        "print(ArtistProfile.objects.get(display_name='Artist 1').sumup_access_token)",
    )
    assert token.stdout.strip().splitlines()[-1] == "access-1"


def test_the_manifest_describes_the_file_and_the_data(site) -> None:
    backup = site.backup()
    manifest = _manifest(backup)

    content = backup.read_bytes()
    assert manifest["file"] == backup.name
    assert manifest["size"] == len(content)
    assert manifest["sha256"] == hashlib.sha256(content).hexdigest()
    assert manifest["engine"] == site.vendor
    leaves = MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes()
    assert manifest["migrations"] == {app: [name] for app, name in leaves}
    counts = manifest["row_counts"]
    assert isinstance(counts, dict)
    assert {table: n for table, n in counts.items() if table.startswith("accounts_")} == {
        "accounts_artistprofile": 3,
        "accounts_emailverificationtoken": 0,
        "accounts_user": 3,
        "accounts_user_groups": 0,
        "accounts_user_user_permissions": 0,
    }
    assert "auth_permission" not in counts, "only the project's own apps are counted"
    assert manifest["key_fingerprints"] == [_fingerprint(os.environ[crypto.KEYS_VARIABLE])]
    # Backups hold password hashes and tokens: readable by their owner only.
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert sorted(path.name for path in backup.parent.iterdir()) == [
        backup.name,
        backup.name + ".manifest.json",
    ]


def test_it_refuses_to_restore_without_yes_in_a_non_interactive_run(sqlite_site) -> None:
    backup = sqlite_site.backup()
    sqlite_site.change_data()
    changed = sqlite_site.data()

    refused = sqlite_site.manage("restore_db", str(backup), stdin="yes\n", ok=False)

    assert refused.returncode == 2
    assert refused.stderr == (
        "error: Refusing to restore without confirmation in a non-interactive run: pass --yes\n"
    )
    assert sqlite_site.data() == changed


def test_it_refuses_a_backup_changed_after_it_was_written(sqlite_site) -> None:
    backup = sqlite_site.backup()
    sqlite_site.change_data()
    changed = sqlite_site.data()
    content = bytearray(backup.read_bytes())
    content[len(content) // 2] ^= 0xFF  # same size, different bytes
    backup.write_bytes(bytes(content))

    refused = sqlite_site.manage("restore_db", str(backup), "--yes", ok=False)

    assert refused.returncode == 1
    assert "Refusing to restore: SHA-256 mismatch" in refused.stderr
    assert sqlite_site.data() == changed


def test_it_refuses_a_backup_without_its_manifest(sqlite_site) -> None:
    backup = sqlite_site.backup()
    backup.with_name(backup.name + ".manifest.json").unlink()

    refused = sqlite_site.manage("restore_db", str(backup), "--yes", ok=False)

    assert refused.returncode == 1
    assert "No manifest beside the backup" in refused.stderr


def test_it_fails_when_the_restored_database_does_not_match_the_manifest(sqlite_site) -> None:
    backup = sqlite_site.backup()
    manifest_file = backup.with_name(backup.name + ".manifest.json")
    manifest = json.loads(manifest_file.read_text())
    manifest["row_counts"]["accounts_user"] = 4
    manifest_file.write_text(json.dumps(manifest))

    failed = sqlite_site.manage("restore_db", str(backup), "--yes", ok=False)

    assert failed.returncode == 1
    assert "FAIL Row counts: differ from the backup: accounts_user: 3 != 4" in failed.stdout
    assert "fails 1 check(s)" in failed.stderr


def test_a_failed_sqlite_backup_leaves_no_file_behind(empty_sqlite_site) -> None:
    site = empty_sqlite_site
    site.sqlite_path.write_bytes(b"this is not a database" * 100)

    failed = site.manage("backup_db", ok=False)

    assert failed.returncode == 1
    assert "Backup failed, nothing written" in failed.stderr
    assert list(site.backups.iterdir()) == []


def test_a_failed_postgresql_backup_leaves_no_file_behind(missing_postgres_site) -> None:
    failed = missing_postgres_site.manage("backup_db", ok=False)

    assert failed.returncode == 1
    assert "Backup failed, nothing written" in failed.stderr
    assert "does not exist" in failed.stderr
    assert list(missing_postgres_site.backups.iterdir()) == []


def test_a_bad_backup_dir_stops_backup_db_before_it_reads_the_database(
    sqlite_site, tmp_path: Path
) -> None:
    in_the_way = tmp_path / "in-the-way"
    in_the_way.write_text("a file, not a folder")

    refused = sqlite_site.manage("backup_db", env={"BACKUP_DIR": str(in_the_way)}, ok=False)

    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"error: BACKUP_DIR must be an absolute path to a folder that exists or can be "
        f"created, got {str(in_the_way)!r}: {in_the_way} is a file"
    ]
    assert in_the_way.read_text() == "a file, not a folder"
    assert not sqlite_site.backups.exists()
