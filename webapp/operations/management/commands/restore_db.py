import sys
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError

from accounts.sumup.crypto import KEYS_VARIABLE
from events.commands import BAD_USAGE, ProjectCommand
from events.options import readable_file
from operations.backups.base import BackupError, Finding
from operations.backups.db import database_settings
from operations.backups.manifest import Manifest
from operations.backups.service import load_backup, restore_backup
from operations.backups.tokens import check_tokens

CONFIRMATION = "yes"


class Command(ProjectCommand):
    help = (
        "Replace the configured database with a backup written by backup_db, then check it "
        "against the backup's manifest (runbook Step 6). Stop web, worker and beat first. "
        "Every running campaign and backfill comes back paused, until staff resume it. "
        "Exit status 2 for a bad option (nothing read or written), 1 when the backup is "
        "refused or the restored database fails a check."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "file", type=readable_file, help="the backup file (its manifest beside it)"
        )
        parser.add_argument(
            "--yes", action="store_true", help="do not ask; required in a non-interactive run"
        )
        parser.add_argument(
            "--allow-undecryptable-tokens",
            action="store_true",
            help="restore even when SUMUP_TOKEN_KEYS cannot decrypt some of the backup's "
            "SumUp tokens (those artists must reconnect)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        archive: Path = options["file"]
        if not options["yes"] and not sys.stdin.isatty():
            raise CommandError(
                "Refusing to restore without confirmation in a non-interactive run: pass --yes",
                returncode=BAD_USAGE,
            )
        try:
            manifest = load_backup(archive)
        except (BackupError, OSError) as exc:
            raise CommandError(f"Refusing to restore: {exc}") from None
        try:
            tokens = check_tokens(archive, manifest)
        except (BackupError, OSError) as exc:
            raise CommandError(f"Refusing to restore: {exc}") from None
        if not tokens.ok and not options["allow_undecryptable_tokens"]:
            raise CommandError(
                f"Refusing to restore: {tokens.problem()}; add the key(s) to "
                f"{KEYS_VARIABLE} after the current ones, or pass --allow-undecryptable-tokens"
            )
        self.stdout.write(
            f"Backup {archive.name} of {manifest.engine} {manifest.database}, taken "
            f"{manifest.created_at}: SHA-256 verified."
        )
        self.stdout.write(f"Restoring into {database_settings()['NAME']}.")
        if not options["yes"]:
            self._confirm(manifest)
        started = time.monotonic()
        try:
            findings = restore_backup(archive, manifest, tokens)
        except (BackupError, DatabaseError, OSError) as exc:
            raise CommandError(f"Restore failed: {exc}") from None
        self.stdout.write(f"Restored in {time.monotonic() - started:.2f} s; checking...")
        self._report(findings)

    def _confirm(self, manifest: Manifest) -> None:
        target = database_settings()["NAME"]
        answer = input(
            f"This replaces every table of database {target!s} with the backup of "
            f"{manifest.database}. Type '{CONFIRMATION}' to go on: "
        )
        if answer.strip().lower() != CONFIRMATION:
            raise CommandError("Restore cancelled; the database was not touched.")

    def _report(self, findings: list[Finding]) -> None:
        marks = {
            "ok": self.style.SUCCESS("OK  "),
            "warn": self.style.WARNING("WARN"),
            "fail": self.style.ERROR("FAIL"),
        }
        for finding in findings:
            self.stdout.write(f"{marks[finding.level]} {finding.name}: {finding.detail}")
        failed = [finding.name for finding in findings if finding.failed]
        if failed:
            raise CommandError(f"The restored database fails {len(failed)} check(s): {failed}")
        self.stdout.write(self.style.SUCCESS("Restore complete; the database matches the backup."))
