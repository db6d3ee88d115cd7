"""Is beat's schedule whole and on time? What `healthcheck --beat` and `/readyz` ask of it.

A live heartbeat only proves beat's loop turns; a beat whose schedule lost an entry, or
never had one, looks just as alive. So every entry of `settings.CELERY_BEAT_SCHEDULE`
must be in the database schedule, enabled, and sent within twice its interval. A beat
that has just started gets that long to send each entry once: an entry is judged from
its last run or from beat's start, whichever is later.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django_celery_beat.models import PeriodicTask

LATE_AFTER_INTERVALS = 2  # an entry not sent for this many of its intervals is late


def required_entries() -> list[str]:
    """The entries the system needs, by name: what settings give beat to install."""
    return list(settings.CELERY_BEAT_SCHEDULE)


def schedule_problems(
    now: datetime, beat_started: datetime | None, names: Iterable[str] | None = None
) -> list[str]:
    """One line per required entry that is missing, disabled or late; empty when all is well."""
    wanted = list(required_entries() if names is None else names)
    found = {
        task.name: task
        for task in PeriodicTask.objects.filter(name__in=wanted).select_related("interval")
    }
    problems = []
    for name in wanted:
        task = found.get(name)
        if task is None:
            problems.append(f"{name}: not in the schedule")
        elif not task.enabled:
            problems.append(f"{name}: disabled")
        elif task.interval is not None:
            late = _lateness(task, now, beat_started)
            if late:
                problems.append(f"{name}: {late}")
    return problems


def _lateness(task: PeriodicTask, now: datetime, beat_started: datetime | None) -> str:
    assert task.interval is not None
    every = task.interval.schedule.run_every
    allowed = every * LATE_AFTER_INTERVALS
    seen = [moment for moment in (task.last_run_at, beat_started) if moment is not None]
    if not seen:
        return "never ran, and no beat has recorded its start"
    if now - max(seen) <= allowed:
        return ""
    every_s = _seconds(every)
    if task.last_run_at is None:
        return f"never ran (every {every_s}; beat started {_seconds(now - max(seen))} ago)"
    return f"last ran {_seconds(now - task.last_run_at)} ago (every {every_s})"


def _seconds(span: timedelta) -> str:
    return f"{span.total_seconds():.0f} s"
