"""Beat's scheduler: django-celery-beat's database schedule, plus a heartbeat in Redis.

Beat runs with `--scheduler jobs.heartbeat:HeartbeatScheduler` (also the default,
`CELERY_BEAT_SCHEDULER`). The schedule lives in the database, so staff see and steer it
in the admin, and each entry records when it last ran. The heartbeat is written by the
beat process on its own tick rather than by a task, so it proves the schedule loop is
alive even while no worker runs, and a stalled beat cannot be hidden by a worker that
keeps answering; when beat started is kept too, so health can give a fresh beat time to
run each entry once before calling it late. What is written, and its reading for
health, is operations.heartbeat's.
"""

import logging
import time
from typing import Any

import redis
from django_celery_beat.schedulers import DatabaseScheduler

from events import shared_redis
from operations.heartbeat import HEARTBEAT_INTERVAL, write_heartbeat, write_started

log = logging.getLogger(__name__)


class HeartbeatScheduler(DatabaseScheduler):  # type: ignore[misc]
    """The database schedule, plus a heartbeat at most every 30 s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_heartbeat: float | None = None
        super().__init__(*args, **kwargs)
        try:
            write_started(shared_redis.client())
        except redis.RedisError as exc:
            log.warning("beat start time not recorded: %s", exc)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self._beat()
        # Beat sleeps for whatever tick returns (up to 5 minutes by default); waking at
        # least every interval keeps the heartbeat fresh between scheduled tasks.
        return min(float(super().tick(*args, **kwargs)), HEARTBEAT_INTERVAL)

    def _beat(self) -> None:
        now = time.time()
        last = self._last_heartbeat
        # A clock that stepped backwards also warrants a write, or the key would go stale.
        if last is not None and 0 <= now - last < HEARTBEAT_INTERVAL:
            return
        try:
            self._last_heartbeat = write_heartbeat(shared_redis.client())
        except redis.RedisError as exc:
            # Scheduling must go on without Redis for the heartbeat; the stale key is
            # how monitoring learns about it. The next tick tries again.
            log.warning("beat heartbeat not written: %s", exc)
