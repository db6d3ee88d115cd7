"""The workers' side of the project's Celery app (`celery -A jobs worker|beat`).

The app itself is events.celery_app, shared with the web, which publishes through it
without loading any task (events.queue). Here it gets what only workers and beat need:
the task modules, logging through Django's `LOGGING` as the web does, and the database
connections handled per task as the web handles them per request."""

import logging
import logging.config
from typing import Any

from celery import Task
from celery.signals import setup_logging, task_postrun, task_prerun

from events.celery_app import app
from events.startup import settings_or_exit

__all__ = ["app"]

# Before Celery reads them: a bad setting ends `celery -A jobs worker|beat` with one line.
settings_or_exit()

app.conf.include = [
    "jobs.health",
    "jobs.token_refresh",
    "jobs.backfills",
    "jobs.campaigns",
    "jobs.overview",
]


@setup_logging.connect
def _log_as_the_web_does(loglevel: int | None = None, **kwargs: object) -> None:
    """Worker and beat write where the web writes (LOG_FILE, the console), in its format
    (LOG_FORMAT) and through its redaction filter (events.logging). A receiver of this
    signal is what keeps Celery from replacing the root logger's handlers with its own.
    The level is the more verbose of LOG_LEVEL and the command's --loglevel."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    root = logging.getLogger()
    if loglevel:
        root.setLevel(min(root.level, loglevel))


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(sender: "Task[Any, Any] | None" = None, **kwargs: object) -> None:
    """Per task what Django does per request: drop a connection that failed or outlived
    DATABASE_CONN_MAX_AGE, keep the others (settings.CELERY_DB_REUSE_MAX says why).
    A task run eagerly is inside its caller's request or transaction: left alone."""
    from django.db import close_old_connections

    if sender is None or not getattr(sender.request, "is_eager", False):
        close_old_connections()
