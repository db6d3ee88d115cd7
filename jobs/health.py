"""Tasks that show a worker is alive and reaches the database."""

from typing import Any

from celery import shared_task
from django.db import connection

from accounts.models import ArtistProfile
from events import task_limits
from jobs import options


@shared_task(name="jobs.health.ping", **options.limits(task_limits.HEALTH_PING))
def ping() -> dict[str, Any]:
    """Answer with the database this worker uses and how many artists it sees."""
    return {"database": connection.vendor, "artists": ArtistProfile.objects.count()}
