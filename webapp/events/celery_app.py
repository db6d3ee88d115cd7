"""The project's one Celery app, shared by the web and the workers.

The web publishes through it (events.queue) without loading a single task: a task this
process has not loaded is sent by name. `celery -A jobs worker|beat` runs this same app
through jobs.celery, which adds the workers' side (the task modules, logging, database
connections per task).

Configuration comes from Django settings prefixed `CELERY_`, beat's schedule included
(`CELERY_BEAT_SCHEDULE`): plain data, read without loading any model.
"""

import os

from celery import Celery

# Before the app exists: Celery installs its Django fixup only when this is set.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "events.settings")

# "jobs": the name workers, beat and the monitoring tools know the app by.
app = Celery("jobs")
app.config_from_object("django.conf:settings", namespace="CELERY")
