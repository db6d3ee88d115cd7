"""The deployment plan's sequence as one command: back up, check, migrate, verify, health.

The migration plan is read first: a plan that would unapply anything is refused before
the backup, and the plan's targeted steps (accounts 0003, then 0004) run only while the
database is behind them, so running `deploy` again on a migrated database changes nothing.
Stops at the first failing step with what failed and the command that rolls back.
"""

import io
from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser

from events.commands import ProjectCommand
from operations import migration_plan
from operations.migration_plan import Node

# The plan's Step 3, in order: the schema migration, the data migration, then the rest.
MIGRATE_STEPS: list[tuple[str, Node | None]] = [
    ("Step 3: migrate accounts 0003", ("accounts", "0003_add_sumup_oauth_fields")),
    ("Step 3: migrate accounts 0004", ("accounts", "0004_migrate_existing_artists_to_sumup")),
    ("Step 3: remaining migrations", None),
]

ROLLBACK = (
    "python webapp/manage.py migrate accounts 0003_add_sumup_oauth_fields && "
    "python webapp/manage.py migrate accounts 0002_emailverificationtoken"
)
ROLLBACK_DROPS = (
    "It drops the SumUp columns of accounts 0003-0007 (tokens, merchant codes, connection "
    "status, business names, refresh bookkeeping and 'already notified' marks) and keeps "
    "every artist, user, campaign, recipient, suppression and backfill record. Run it with "
    "the release that predates SumUp."
)


class Command(ProjectCommand):
    help = (
        "Run the deploy sequence against the configured database: backup (Step 1), migration "
        "checks (Step 2), migrate (Step 3), verify (Step 4), health (Step 8). Refuses, before "
        "anything, a migration plan that would unapply a migration."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--plan",
            action="store_true",
            help="Print the migrations each step would apply, in order, and change nothing.",
        )
        parser.add_argument("--skip-backup", action="store_true", help="Not recommended.")
        parser.add_argument(
            "--with-workers",
            action="store_true",
            help="Also require a worker and beat to answer (after the restart).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            planned = self._plan()
            migration_plan.refuse_backwards(planned)
        except Exception as exc:  # nothing has run: say so, whatever the failure
            raise CommandError(
                f"Refused: {exc}\nNothing ran: no backup, no migration, no change."
            ) from exc
        self._print_plan(planned)
        if options["plan"]:
            return

        steps: list[tuple[str, Callable[[], object]]] = []
        if not options["skip_backup"]:
            steps.append(("Step 1: back up the database", lambda: call_command("backup_db")))
        steps.append(("Step 2: migration files are complete", self._no_missing_migrations))
        for step in planned:
            steps.append((step.title, partial(self._migrate, step)))
        steps += [
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
        for title, run in steps:
            self.stdout.write(self.style.MIGRATE_HEADING(title))
            try:
                run()
            except Exception as exc:  # any failure stops the deploy, whatever its type
                raise CommandError(
                    f"{title} failed: {exc}\n"
                    "The deploy stopped here; nothing after this step ran.\n"
                    f"To roll the schema back: {ROLLBACK}\n"
                    f"{ROLLBACK_DROPS}\n"
                    "To restore the backup instead: python webapp/manage.py restore_db FILE"
                ) from exc
        self.stdout.write(self.style.SUCCESS("Deploy sequence complete."))

    def _plan(self) -> list[migration_plan.Step]:
        """The Step 3 commands the database needs: a targeted one only while behind it."""
        applied = migration_plan.applied_migrations()
        return migration_plan.plan(
            [(title, target) for title, target in MIGRATE_STEPS if target not in applied]
        )

    def _print_plan(self, planned: list[migration_plan.Step]) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("Migration plan"))
        by_title = {step.title: step for step in planned}
        for title, target in MIGRATE_STEPS:
            step = by_title.get(title)
            if step is not None:
                self.stdout.write(f"  {title}: {len(step.migrations)} to apply")
                for app_label, name in step.migrations:
                    self.stdout.write(f"    apply {app_label}.{name}")
            elif target is not None:
                self.stdout.write(f"  {title}: skipped, {target[0]}.{target[1]} is applied")
        if not any(step.migrations for step in planned):
            self.stdout.write("  Nothing to apply: the database is up to date.")

    def _no_missing_migrations(self) -> None:
        call_command("makemigrations", check=True, dry_run=True, stdout=io.StringIO())

    def _migrate(self, step: migration_plan.Step) -> None:
        # Read again: the backup takes a while, and a targeted `migrate` on a database
        # that another deploy has moved past since would unapply what that one applied.
        if step.target is not None and step.target in migration_plan.applied_migrations():
            self.stdout.write("  Skipped: applied since the plan was read.")
            return
        migration_plan.refuse_backwards(migration_plan.plan([(step.title, step.target)]))
        if step.target is None:
            call_command("migrate", interactive=False)
        else:
            call_command("migrate", step.target[0], step.target[1], interactive=False)
