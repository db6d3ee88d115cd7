"""What beat runs, and how often. Every entry is safe to run from two beats at once."""

from typing import Any

from django.conf import settings


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {
        "sumup-token-refresh-sweep": {
            "task": "jobs.token_refresh.sweep",
            "schedule": float(settings.SUMUP_REFRESH_SWEEP_INTERVAL),
            "options": {"expires": float(settings.SUMUP_REFRESH_SWEEP_INTERVAL)},
        },
    }
