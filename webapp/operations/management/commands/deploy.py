"""The deployment plan's sequence as one command: back up, check, migrate, verify, health.

Stops at the first failing step with what failed and the command that rolls back.
"""

import io
from collections.abc import Callable
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

ROLLBACK = (
    "python webapp/manage.py migrate accounts 0003_add_sumup_oauth_fields && "
    "python webapp/manage.py migrate accounts 0002_emailverificationtoken"
)


class Command(BaseCommand):
    help = (
        "Run the deploy sequence against the configured database: backup (Step 1), migration "
        "checks (Step 2), migrate (Step 3), verify (Step 4), health (Step 8)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--skip-backup", action="store_true", help="Not recommended.")
        parser.add_argument(
            "--with-workers",
            action="store_true",
            help="Also require a worker and beat to answer (after the restart).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        steps: list[tuple[str, Callable[[], object]]] = []
        if not options["skip_backup"]:
            steps.append(("Step 1: back up the database", lambda: call_command("backup_db")))
        steps += [
            ("Step 2: migration files are complete", self._no_missing_migrations),
            ("Step 3: migrate accounts 0003", lambda: self._migrate("0003_add_sumup_oauth_fields")),
            (
                "Step 3: migrate accounts 0004",
                lambda: self._migrate("0004_migrate_existing_artists_to_sumup"),
            ),
            ("Step 3: remaining migrations", lambda: self._migrate(None)),
            ("Step 4: verify schema and data", lambda: call_command("verify_sumup_migration")),
            ("Step 8: health", lambda: call_command("healthcheck")),
        ]
        if options["with_workers"]:
            steps += [
                (
                    "Step 8: a worker answers",
                    lambda: call_command("healthcheck", worker=True, any=True),
                ),
                ("Step 8: beat is alive", lambda: call_command("healthcheck", beat=True)),
            ]
        for title, step in steps:
            self.stdout.write(self.style.MIGRATE_HEADING(title))
            try:
                step()
            except Exception as exc:  # any failure stops the deploy, whatever its type
                raise CommandError(
                    f"{title} failed: {exc}\n"
                    "The deploy stopped here; nothing after this step ran.\n"
                    f"To roll the schema back: {ROLLBACK}\n"
                    "To restore the backup instead: python webapp/manage.py restore_db FILE"
                ) from exc
        self.stdout.write(self.style.SUCCESS("Deploy sequence complete."))

    def _no_missing_migrations(self) -> None:
        call_command("makemigrations", check=True, dry_run=True, stdout=io.StringIO())

    def _migrate(self, target: str | None) -> None:
        if target is None:
            call_command("migrate", interactive=False)
        else:
            call_command("migrate", "accounts", target, interactive=False)
