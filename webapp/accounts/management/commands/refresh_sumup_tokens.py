import time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from rich.progress import Progress

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup.refresh import due_profiles
from accounts.sumup.sweep import run_sweep
from events.commands import ProjectCommand
from events.options import seconds

POLL_SECONDS = 0.5


class Command(ProjectCommand):
    help = (
        "Enqueue a SumUp token refresh for every due artist, as beat's sweep does. "
        "Workers do the refreshing; --wait follows them and prints a summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--wait", action="store_true", help="Wait for the workers to finish.")
        parser.add_argument(
            "--timeout",
            type=seconds(1, 86_400),
            default=600.0,
            help="Seconds to wait at most (with --wait), 1 to 86400.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = timezone.now()
        # The sweep queues the next few seconds of paced work and its dispatcher the rest,
        # so --wait follows every artist due now, not only those the sweep itself queued.
        # One already in error is tried again but not waited for: it may stay in error.
        due = list(
            due_profiles(started)
            .exclude(sumup_connection_status=ConnectionStatus.ERROR)
            .values_list("pk", flat=True)
        )
        report = run_sweep(exclusive=False)
        if report.skipped:
            self.stdout.write(self.style.WARNING(f"Sweep: {report.skipped}"))
        more = "; the dispatcher queues the rest at the budget's pace" if report.more_due else ""
        self.stdout.write(f"Enqueued {len(report.enqueued)} artist(s) for refresh{more}.")
        if not options["wait"] or not due:
            return
        pending = (
            ArtistProfile.objects.filter(pk__in=due)
            .exclude(sumup_last_refresh_at__gte=started)
            .exclude(sumup_connection_status__in=[ConnectionStatus.EXPIRED, ConnectionStatus.ERROR])
        )
        deadline = time.monotonic() + options["timeout"]
        with Progress(transient=True) as progress:
            bar = progress.add_task("Refreshing", total=len(due))
            while (left := pending.count()) and time.monotonic() < deadline:
                progress.update(bar, completed=len(due) - left)
                time.sleep(POLL_SECONDS)
        done = ArtistProfile.objects.filter(pk__in=due)
        refreshed = done.filter(sumup_last_refresh_at__gte=started).count()
        expired = done.filter(sumup_connection_status=ConnectionStatus.EXPIRED).count()
        errors = done.filter(sumup_connection_status=ConnectionStatus.ERROR).count()
        self.stdout.write(f"refreshed={refreshed} expired={expired} errors={errors}")
        if left:
            raise CommandError(f"{left} artist(s) still waiting for a worker after the timeout.")
