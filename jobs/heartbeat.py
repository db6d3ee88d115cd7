"""Beat's heartbeat: the scheduler itself records in Redis that its loop is running.

Run beat with `celery -A jobs beat --scheduler jobs.heartbeat:HeartbeatScheduler`. The
heartbeat is written by the beat process on its own tick rather than by a task, so it
proves the schedule loop is alive even while no worker runs, and a stalled beat cannot
be hidden by a worker that keeps answering.
"""

import logging
import time
from typing import Any, cast

import redis
from celery.beat import PersistentScheduler

from events import redis as events_redis

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "jobs:beat:heartbeat"
HEARTBEAT_INTERVAL = 30.0  # seconds between writes, and the longest beat sleeps between ticks
# Kept long past staleness so a probe can still say when beat was last seen.
HEARTBEAT_TTL = 24 * 3600  # seconds


def write_heartbeat(client: redis.Redis) -> float:
    """Record now (Unix time, seconds) as beat's last sign of life; returns it."""
    now = time.time()
    client.set(HEARTBEAT_KEY, repr(now), ex=HEARTBEAT_TTL)
    return now


def read_heartbeat(client: redis.Redis) -> float | None:
    """When beat last wrote its heartbeat (Unix time), or None if it never did."""
    # redis-py types every reply as maybe-awaitable; this sync client returns bytes.
    raw = cast("bytes | None", client.get(HEARTBEAT_KEY))
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


class HeartbeatScheduler(PersistentScheduler):
    """The default file-backed scheduler, plus a heartbeat at most every 30 s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_heartbeat: float | None = None
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self._beat()
        # Beat sleeps for whatever tick returns (up to 5 minutes by default); waking at
        # least every interval keeps the heartbeat fresh between scheduled tasks.
        return min(super().tick(*args, **kwargs), HEARTBEAT_INTERVAL)

    def _beat(self) -> None:
        now = time.time()
        last = self._last_heartbeat
        # A clock that stepped backwards also warrants a write, or the key would go stale.
        if last is not None and 0 <= now - last < HEARTBEAT_INTERVAL:
            return
        try:
            self._last_heartbeat = write_heartbeat(events_redis.client())
        except redis.RedisError as exc:
            # Scheduling must go on without Redis for the heartbeat; the stale key is
            # how monitoring learns about it. The next tick tries again.
            log.warning("beat heartbeat not written: %s", exc)
