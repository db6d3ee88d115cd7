from typing import Any

from django.core.management.base import CommandError

from accounts.sumup.verification import run_checks, status_counts
from events.commands import ProjectCommand


class Command(ProjectCommand):
    help = (
        "Check the SumUp OAuth migration (runbook Step 4): counts by status, no NULL or "
        "invalid status, tokens only where connected, model methods. Exit status 1 on failure."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("Verifying the SumUp OAuth migration...")
        results = run_checks()
        if results[0].ok:
            counts = status_counts()
            total = sum(counts.values())
            self.stdout.write(f"Total artists: {total}")
            for status, count in counts.items():
                self.stdout.write(f"  {status if status is not None else 'NULL'}: {count}")
            if total and counts.get("not_connected") == total:
                self.stdout.write(f"All {total} artists have status 'not_connected'.")
        for result in results:
            mark = self.style.SUCCESS("OK  ") if result.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{mark} {result.name}: {result.detail}")
        failed = [result.name for result in results if not result.ok]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")
        self.stdout.write(self.style.SUCCESS("All SumUp migration checks passed."))
