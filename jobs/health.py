"""Tasks that show a worker is alive and reaches the database."""

from typing import Any

from celery import shared_task
from django.db import connection

from accounts.models import ArtistProfile


@shared_task(name="jobs.health.ping", time_limit=10, soft_time_limit=5)
def ping() -> dict[str, Any]:
    """Answer with the database this worker uses and how many artists it sees."""
    return {"database": connection.vendor, "artists": ArtistProfile.objects.count()}
