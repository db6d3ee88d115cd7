import getpass
import time
from argparse import ArgumentTypeError
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.urls import reverse
from rich.progress import BarColumn, Progress, TextColumn

from campaigns import audience, services
from campaigns.messages import build
from campaigns.models import Campaign
from campaigns.progress import progress
from events.commands import BAD_USAGE, ProjectCommand
from events.options import rate_or_unlimited

POLL_SECONDS = 1.0
STALL_WARNING_SECONDS = 60.0  # no progress this long while running: say a worker may be missing


class Command(ProjectCommand):
    help = (
        "Ask artists whose SumUp connection is not working to connect it: creates and starts "
        "a sumup_reconnect campaign, which the workers send at the global email rate. An "
        "artist already notified since they were last disconnected is skipped (--resend "
        "includes them)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--approved-only", action="store_true", help="Only artists whose profile is approved."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show the audience and a sample message; send nothing.",
        )
        parser.add_argument(
            "--rate",
            default=settings.EMAIL_RATE_LIMIT,
            type=rate_or_unlimited,
            help="Most emails per period across all workers, e.g. 10/s or 600/min "
            "(default EMAIL_RATE_LIMIT, %(default)s); 'unlimited' for none.",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Show progress until the campaign is done; exit 1 if any email failed or "
            "its outcome is unknown.",
        )
        parser.add_argument(
            "--resend",
            action="store_true",
            help="Also email artists who already got this notice since they were disconnected.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rate = _checked_rate(options["rate"])
        approved_only, resend = options["approved_only"], options["resend"]
        found = audience.count(approved_only=approved_only, include_notified=resend)
        scope = "approved artists" if approved_only else "artists"
        self.stdout.write(f"Audience: {found.eligible} {scope} need to connect SumUp.")
        if found.suppressed or found.already_notified:
            self.stdout.write(
                f"Skipped: {found.suppressed} suppressed address(es), {found.already_notified} "
                "already notified since they were last disconnected (--resend includes them)."
            )
        if options["dry_run"]:
            self._show_sample(approved_only=approved_only, resend=resend)
            return
        actor = f"manage.py notify_artists_sumup_migration ({getpass.getuser()})"
        name = "SumUp reconnect" + (" (approved artists)" if approved_only else "")
        draft = Campaign(
            name=name, approved_only=approved_only, include_notified=resend, rate_limit=rate
        )
        campaign = services.create(draft, actor=actor)
        counts = services.start(campaign.pk, actor=actor)
        url = settings.SITE_URL + reverse("admin:campaigns_campaign_progress", args=[campaign.pk])
        self.stdout.write(
            f"Campaign {campaign.pk} started: {counts['queued']} email(s) to send at "
            f"{rate or 'no rate limit'}, {counts['skipped']} skipped. Progress: {url}"
        )
        if options["wait"]:
            self._wait(campaign)

    def _show_sample(self, *, approved_only: bool, resend: bool) -> None:
        sample = audience.sendable(approved_only=approved_only, include_notified=resend).first()
        if sample is None:
            self.stdout.write("No one to notify.")
        else:
            message = build(Campaign(), sample)
            self.stdout.write(f"\nSample message (to {', '.join(message.to)}):")
            self.stdout.write(f"Subject: {message.subject}")
            for header, value in sorted(message.extra_headers.items()):
                self.stdout.write(f"{header}: {value}")
            self.stdout.write("")
            self.stdout.write(str(message.body))
        self.stdout.write(self.style.WARNING("Dry run: nothing was sent."))

    def _wait(self, campaign: Campaign) -> None:
        last_change, last_remaining = time.monotonic(), -1
        # The bar counts the emails to send; a skipped recipient is never one of them,
        # so it is counted beside the bar, not in it.
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[emails]}{task.fields[detail]}"),
        )
        with Progress(*columns, console=None, transient=False) as bar:
            task = bar.add_task("sending", total=None, emails="", detail="")
            while True:
                campaign.refresh_from_db()
                now = progress(campaign)
                eta = "" if now.eta_seconds is None else f", ETA {now.eta_seconds} s"
                to_send = now.total - now.skipped
                bar.update(
                    task,
                    total=to_send,
                    completed=to_send - now.remaining,
                    description=campaign.status,
                    emails=f"{to_send - now.remaining}/{to_send} emails · ",
                    detail=f"sent {now.sent}, failed {now.failed}, unknown {now.unknown}; "
                    f"skipped {now.skipped} · {now.rate_per_second}/s{eta}",
                )
                if campaign.status in (Campaign.Status.DONE, Campaign.Status.CANCELLED):
                    break
                if now.remaining != last_remaining:
                    last_change, last_remaining = time.monotonic(), now.remaining
                elif time.monotonic() - last_change > STALL_WARNING_SECONDS:
                    bar.console.print("No progress for a minute: is a worker running?")
                    last_change = time.monotonic()
                time.sleep(POLL_SECONDS)  # the command line watching, not a worker
        self.stdout.write(
            f"Campaign {campaign.pk} {campaign.status}: {now.sent} sent, {now.failed} failed, "
            f"{now.unknown} unknown, {now.skipped} skipped."
        )
        if now.failed or now.unknown:
            raise CommandError(
                f"{now.failed} email(s) failed and {now.unknown} have an unknown outcome; "
                "see the campaign's recipients in the admin."
            )


def _checked_rate(rate: str) -> str:
    """--rate as the parser checks it from the command line; checked again here, before
    anything is read or sent, for a caller that passed it straight in (call_command)."""
    if not rate:
        return rate  # "" is what the parser makes of "unlimited"
    try:
        return rate_or_unlimited(rate)
    except ArgumentTypeError as exc:
        raise CommandError(f"argument --rate: {exc}", returncode=BAD_USAGE) from None
