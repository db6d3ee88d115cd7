"""Start-up checks for the settings the campaign machinery depends on."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from campaigns.dispatch import CHAIN_STALE
from campaigns.sending import CLAIM_SECONDS
from events import task_limits
from events.rate_limits import parse_rate

# The longest a campaign task may run (jobs.campaigns): the visibility timeout must
# exceed it, or Redis hands a running send to a second worker.
LONGEST_TASK_SECONDS = task_limits.CAMPAIGN.hard


def visibility_timeout(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    longest = max(LONGEST_TASK_SECONDS, CLAIM_SECONDS, CHAIN_STALE.total_seconds())
    if timeout <= longest:
        return [
            checks.Error(
                f"CELERY_VISIBILITY_TIMEOUT ({timeout} s) must exceed {longest:.0f} s: a "
                "campaign send still running would be handed to a second worker.",
                id="campaigns.E001",
            )
        ]
    return []


def email_rate(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        parse_rate(settings.EMAIL_RATE_LIMIT, setting="EMAIL_RATE_LIMIT")
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="campaigns.E002")]
    return []


def register() -> None:
    checks.register(visibility_timeout)
    checks.register(email_rate)
