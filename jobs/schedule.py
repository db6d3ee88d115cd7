"""What beat runs, and how often. Every entry is safe to run from two beats at once."""

from typing import Any

from django.conf import settings


def beat_schedule() -> dict[str, dict[str, Any]]:
    from jobs.backfills import RECOVER_INTERVAL
    from jobs.campaigns import RECOVER_INTERVAL as CAMPAIGNS_RECOVER_INTERVAL

    return {
        "campaigns-recover": {
            "task": "jobs.campaigns.recover",
            "schedule": CAMPAIGNS_RECOVER_INTERVAL,
            "options": {"expires": CAMPAIGNS_RECOVER_INTERVAL},
        },
        "backfills-recover": {
            "task": "jobs.backfills.recover",
            "schedule": RECOVER_INTERVAL,
            "options": {"expires": RECOVER_INTERVAL},
        },
        "sumup-token-refresh-sweep": {
            "task": "jobs.token_refresh.sweep",
            "schedule": float(settings.SUMUP_REFRESH_SWEEP_INTERVAL),
            "options": {"expires": float(settings.SUMUP_REFRESH_SWEEP_INTERVAL)},
        },
    }
