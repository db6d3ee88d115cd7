"""Background work for Jersey Events: the Celery app (`celery -A jobs worker|beat`)."""

from jobs.celery import app

__all__ = ["app"]
