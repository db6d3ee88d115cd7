import getpass
import time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from backfills import control, engine, registry
from backfills.models import BackfillRun, RunStatus
from backfills.status import NOTHING, status_payload
from events.commands import ProjectCommand
from events.options import whole_number

POLL_SECONDS = 0.5


def _describe(run: BackfillRun) -> str:
    """The run in one line (two with its last error), in the admin's words."""
    now = status_payload(run)
    return (
        f"run #{run.pk} {run.backfill}: {now['state']}, {now['rows_text']} "
        f"({now['percent_text']}), batch {now['batch_size_text']}"
        + ("" if now["rate_text"] == NOTHING else f", {now['rate_text']}")
        + ("" if now["eta_text"] == NOTHING else f", ETA {now['eta_text']}")
        + (f"\n  last error: {run.last_error}" if run.last_error else "")
    )


class Command(ProjectCommand):
    help = "List, run, pause, resume, cancel and watch batched data backfills."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="Declared backfills and their latest run.")
        run = actions.add_parser("run", help="Start a run on the workers.")
        run.add_argument("name")
        run.add_argument("--dry-run", action="store_true", help="Count and time a sample batch.")
        run.add_argument(
            "--batch-size",
            type=whole_number(1, engine.MAX_BATCH),
            help=f"Rows in the first batch, 1 to {engine.MAX_BATCH:,}.",
        )
        run.add_argument("--wait", action="store_true", help="Follow the run to its end.")
        for action in ("pause", "resume", "cancel", "status"):
            sub = actions.add_parser(action, help=f"{action.capitalize()} the active run.")
            sub.add_argument("name")
            if action in ("resume", "status"):
                sub.add_argument("--wait", action="store_true", help="Follow the run to its end.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self._list()
            return
        try:
            backfill = registry.get(options["name"])
        except LookupError as exc:  # a usage error, as argparse's are
            raise CommandError(str(exc), returncode=2) from None
        who = f"manage.py backfill {action}, by {getpass.getuser()}"
        try:
            if action == "run":
                run = self._run(backfill, options, who)
                if run is None:
                    return
            elif action == "status":
                run = self._latest(backfill.name)
            else:
                active = control.active_run(backfill.name) or self._latest(backfill.name)
                run = getattr(control, action)(active.pk)
                run.events.filter(action=action).update(detail=who)
        except control.ControlError as exc:
            raise CommandError(str(exc)) from None
        if options.get("wait"):
            self._follow(run)
        else:
            self.stdout.write(_describe(run))

    def _list(self) -> None:
        for backfill in registry.all_backfills():
            latest = BackfillRun.objects.filter(backfill=backfill.name).first()
            state = _describe(latest) if latest else "never run"
            self.stdout.write(f"{backfill.name}: {backfill.description}\n  {state}")

    def _latest(self, name: str) -> BackfillRun:
        run = BackfillRun.objects.filter(backfill=name).first()
        if run is None:
            raise CommandError(f"backfill {name!r} has never run")
        return run

    def _run(
        self, backfill: registry.Backfill, options: dict[str, Any], who: str
    ) -> BackfillRun | None:
        size = options["batch_size"]
        if options["dry_run"]:
            to_do, rows, ms = engine.dry_run(backfill, size or 1000)
            self.stdout.write(
                f"{backfill.name}: {to_do:,} row(s) to do; a sample batch did {rows:,} row(s) "
                f"in {ms:.1f} ms (rolled back)."
            )
            return None
        return control.start(backfill.name, batch_size=size, detail=who)

    def _follow(self, run: BackfillRun) -> None:
        """The run as it is; while it is active, a bar from where it is now to its end and
        then its last line. The bar's texts are the admin's (backfills.status)."""
        self.stdout.write(_describe(run))
        if run.is_active:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rows]} · {task.fields[rate]} · ETA {task.fields[eta]}"),
            )
            with Progress(*columns, transient=True) as progress:
                bar = progress.add_task(**self._bar_fields(run))
                while run.is_active:
                    time.sleep(POLL_SECONDS)
                    run.refresh_from_db()
                    progress.update(bar, **self._bar_fields(run))
            self.stdout.write(_describe(run))
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"run #{run.pk} ended {run.status}")

    @staticmethod
    def _bar_fields(run: BackfillRun) -> dict[str, Any]:
        now = status_payload(run)
        return {
            "description": f"{run.backfill}: {now['state']}",
            "completed": now["percent"],
            "total": 100,
            "rows": now["rows_text"],
            "rate": now["rate_text"],
            "eta": now["eta_text"],
        }
