"""Back up the configured database to a file with a manifest, and restore it from one.

A backup appears under its final name only once it is complete and checked: it is
written under a hidden `.partial` name, and any failure removes what was written.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from accounts.sumup import crypto
from backfills import control as backfill_control
from backfills.models import BackfillRun
from campaigns import services as campaign_services
from campaigns.models import Campaign
from operations.backups import postgres, since_backup, sqlite
from operations.backups.base import BackupError, Finding
from operations.backups.db import database_settings, vendor
from operations.backups.manifest import (
    DatabaseState,
    Manifest,
    compare,
    manifest_path,
    read_state,
    sha256_of,
    verify_archive,
)
from operations.backups.tokens import TokenCheck

DIRECTORY_MODE = 0o700  # backups hold password hashes and encrypted tokens
FILE_MODE = 0o600
RESTORE_ACTOR = "restore_db"


@dataclass(frozen=True)
class Engine:
    suffix: str
    dump: Callable[[dict[str, Any], Path], DatabaseState]
    restore: Callable[[dict[str, Any], Path], None]
    check: Callable[[BaseDatabaseWrapper], list[Finding]] | None = None


ENGINES = {
    "sqlite": Engine(sqlite.SUFFIX, sqlite.dump, sqlite.restore, sqlite.check),
    "postgresql": Engine(postgres.SUFFIX, postgres.dump, postgres.restore),
}


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest_path: Path
    manifest: Manifest


def _engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise BackupError(f"No backup support for the {name} database engine") from None


def _database_label(settings_dict: dict[str, Any]) -> str:
    name = str(settings_dict["NAME"])
    return Path(name).stem if vendor() == "sqlite" else name


def _free_name(directory: Path, stem: str, suffix: str) -> Path:
    candidate, n = directory / f"{stem}{suffix}", 1
    while candidate.exists() or manifest_path(candidate).exists():
        n += 1
        candidate = directory / f"{stem}-{n}{suffix}"
    return candidate


def create_backup(directory: Path) -> Backup:
    """Write a checked backup of the configured database and its manifest into `directory`."""
    settings_dict = database_settings()
    engine = _engine(vendor())
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    created = datetime.now(UTC)
    label = _database_label(settings_dict)
    final = _free_name(directory, f"{label}-{created:%Y%m%dT%H%M%SZ}", engine.suffix)
    partial = final.with_name(f".{final.name}.partial")
    partial_manifest = manifest_path(partial)
    published = False
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        state = engine.dump(settings_dict, partial)
        manifest = Manifest(
            file=final.name,
            engine=vendor(),
            database=str(settings_dict["NAME"]),
            created_at=created.isoformat(),
            size=partial.stat().st_size,
            sha256=sha256_of(partial),
            migrations=state.migrations,
            row_counts=state.row_counts,
            tables=state.tables,
            key_fingerprints=crypto.key_fingerprints(),
        )
        manifest.write(partial_manifest)
        os.chmod(partial_manifest, FILE_MODE)
        # link, unlike rename, fails rather than replacing a backup that took the name.
        os.link(partial, final)
        published = True
        os.replace(partial_manifest, manifest_path(final))
        partial.unlink()
    except BaseException:
        for leftover in (partial, partial_manifest, *((final,) if published else ())):
            leftover.unlink(missing_ok=True)
        raise
    return Backup(final, manifest_path(final), manifest)


def load_backup(archive: Path) -> Manifest:
    """The archive's manifest, once the archive is shown to be the file it describes and
    to fit the configured database engine; nothing is touched yet."""
    manifest = Manifest.read(manifest_path(archive))
    verify_archive(archive, manifest)
    if manifest.engine != vendor():
        raise BackupError(
            f"{archive} is a {manifest.engine} backup; the configured database is {vendor()}"
        )
    return manifest


def restore_backup(archive: Path, manifest: Manifest, tokens: TokenCheck) -> list[Finding]:
    """Replace the configured database with the archive, pause every campaign and backfill
    it brings back, then check it against the manifest and say what the live database
    did after the backup that the restored one does not know."""
    engine = _engine(manifest.engine)
    settings_dict = database_settings()
    live = since_backup.read_live(datetime.fromisoformat(manifest.created_at))
    # Our own open connection would hold locks (PostgreSQL) or a stale file (SQLite).
    connections.close_all()
    engine.restore(settings_dict, archive)
    resends = since_backup.resends(connection, live)
    # Counted before the pause adds its audit rows, which the backup does not hold.
    state = read_state(connection, manifest.row_counts)
    findings = [_hold(resends)]
    findings += engine.check(connection) if engine.check else []
    findings += compare(manifest, state)
    extra = sorted(set(state.tables) - set(manifest.tables))
    if extra:
        findings.append(
            Finding(
                "Tables",
                "warn",
                f"not in the backup, left as they were: {', '.join(extra)} "
                "(created after the backup; drop them before migrating again)",
            )
        )
    findings.append(tokens.finding())
    findings.append(since_backup.resend_finding(resends, live, manifest.created_at))
    findings.append(since_backup.rotation_finding(connection, live, manifest.created_at))
    return findings


def _hold(resends: since_backup.Resends) -> Finding:
    """Pause what the restore brought back running: its rows may be older than what was
    sent or done since, so only staff, having read this report, resume it."""
    try:
        with connection.cursor() as cursor:
            tables = set(connection.introspection.table_names(cursor))
        campaigns = (
            campaign_services.pause_all(actor=RESTORE_ACTOR, note=resends.note)
            if Campaign._meta.db_table in tables
            else []
        )
        runs = (
            backfill_control.pause_all(detail=f"paused by {RESTORE_ACTOR}")
            if BackfillRun._meta.db_table in tables
            else []
        )
    except DatabaseError as exc:
        return Finding(
            "Paused",
            "fail",
            f"campaigns and backfills could not be paused ({exc}): pause them before "
            "starting worker and beat",
        )
    if not campaigns and not runs:
        return Finding("Paused", "ok", "no campaign or backfill run was running")
    campaign_ids = ", ".join(f"#{pk}" for pk in campaigns) or "none"
    run_ids = ", ".join(f"#{pk}" for pk in runs) or "none"
    return Finding(
        "Paused",
        "warn",
        f"{len(campaigns)} campaign(s) ({campaign_ids}) and {len(runs)} backfill run(s) "
        f"({run_ids}); nothing resumes until staff resume each (admin; "
        "`manage.py backfill resume NAME`) after reading this report",
    )
