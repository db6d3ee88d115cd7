"""The Celery app. Configuration comes from Django settings prefixed `CELERY_`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "events.settings")

app = Celery("jobs", include=["jobs.health"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.beat_schedule = {}
