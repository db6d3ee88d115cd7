"""The Celery app. Configuration comes from Django settings prefixed `CELERY_`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "events.settings")

app = Celery(
    "jobs", include=["jobs.health", "jobs.token_refresh", "jobs.backfills", "jobs.campaigns"]
)
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_after_configure.connect
def _schedule(sender: Celery, **kwargs: object) -> None:
    from jobs.schedule import beat_schedule

    sender.conf.beat_schedule = beat_schedule()
