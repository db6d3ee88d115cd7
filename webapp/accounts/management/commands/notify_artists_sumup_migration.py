from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.sumup.reconnect_notice import audience, render_reconnect_message


class Command(BaseCommand):
    help = "Ask artists whose SumUp connection is not working to connect their SumUp account."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--approved-only", action="store_true", help="Only artists whose profile is approved."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show the audience and a sample message; send nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        recipients = audience(approved_only=options["approved_only"])
        count = recipients.count()
        scope = "approved artists" if options["approved_only"] else "artists"
        self.stdout.write(f"Audience: {count} {scope} need to connect SumUp.")
        if not options["dry_run"]:
            raise CommandError(
                "Sending is not available in this version; run with --dry-run to review "
                "the audience and the message."
            )
        sample = recipients.first()
        if sample is None:
            self.stdout.write("No one to notify.")
            return
        message = render_reconnect_message(sample)
        self.stdout.write(f"\nSample message (to {message.to}):")
        self.stdout.write(f"Subject: {message.subject}\n")
        self.stdout.write(message.text)
        self.stdout.write(self.style.WARNING("Dry run: nothing was sent."))
