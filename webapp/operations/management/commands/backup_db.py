import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError

from events.commands import ProjectCommand
from events.options import folder
from operations.backups.base import BackupError
from operations.backups.service import create_backup


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Command(ProjectCommand):
    help = (
        "Back up the configured database while it runs (runbook Step 1): SQLite through the "
        "online backup API, PostgreSQL through pg_dump -Fc, each checked after writing. "
        "Writes a timestamped file and a manifest beside it into --dir (default BACKUP_DIR)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--dir",
            type=folder,
            default=None,
            help="folder for the backup (default: BACKUP_DIR, else <repo>/var/backups)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = (options["dir"] or settings.BACKUP_DIR).expanduser().resolve()
        started = time.monotonic()
        try:
            backup = create_backup(directory)
        except (BackupError, DatabaseError, OSError) as exc:
            raise CommandError(f"Backup failed, nothing written: {exc}") from None
        elapsed = time.monotonic() - started
        manifest = backup.manifest
        rows = sum(manifest.row_counts.values())
        self.stdout.write(f"Backup:   {backup.path}")
        self.stdout.write(f"Size:     {manifest.size} bytes ({_human(manifest.size)})")
        self.stdout.write(f"SHA-256:  {manifest.sha256}")
        self.stdout.write(f"Manifest: {backup.manifest_path}")
        self.stdout.write(
            f"Database: {manifest.engine} {manifest.database}, "
            f"{len(manifest.row_counts)} project table(s), {rows} row(s)"
        )
        self.stdout.write(self.style.SUCCESS(f"Backup written and checked in {elapsed:.2f} s."))
