from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from events.commands import ProjectCommand
from operations import readiness


class Command(ProjectCommand):
    help = (
        "Run readiness checks and exit non-zero when one fails; for container healthchecks. "
        "Without flags: the web's own needs (database, Redis, migrations). --worker: this "
        "host's worker (celery@<hostname>) answers a ping. --beat: beat's heartbeat is fresh "
        "and every schedule entry is present, enabled and ran within twice its interval."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--worker", action="store_true", help="check a worker answers")
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--any", action="store_true", help="with --worker: any worker")
        target.add_argument(
            "--destination", metavar="NODE", help="with --worker: this node name instead"
        )
        parser.add_argument("--beat", action="store_true", help="check beat and its schedule")

    def handle(self, *args: Any, **options: Any) -> None:
        if (options["any"] or options["destination"]) and not options["worker"]:
            raise CommandError("--any and --destination go with --worker", returncode=2)
        checks: list[readiness.Check] = []
        if options["worker"]:
            destination: str | None = None
            if not options["any"]:
                destination = options["destination"] or readiness.this_host_worker()
            checks.append(readiness.worker_check(destination))
        if options["beat"]:
            checks += readiness.beat_checks()
        results = readiness.run_checks(checks or readiness.web_checks())
        for name, result in results.items():
            mark = self.style.SUCCESS("OK  ") if result.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{mark} {name:<10} {result.ms:7.1f} ms  {result.detail}")
        failed = [name for name, result in results.items() if not result.ok]
        if failed:
            raise CommandError(f"Unhealthy: {', '.join(failed)}")
