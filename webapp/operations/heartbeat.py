"""Beat's heartbeat in Redis: when beat last showed its schedule loop alive, and when the
running beat started. Beat's scheduler (jobs.heartbeat) writes both on its own tick;
readiness and `healthcheck --beat` read them here, without loading anything of beat's.

Both are Unix times (seconds) written as text, and outlive staleness by far (`TTL`), so a
probe can still say when beat was last seen.
"""

import time
from typing import cast

import redis

HEARTBEAT_KEY = "jobs:beat:heartbeat"
STARTED_KEY = "jobs:beat:started"
HEARTBEAT_INTERVAL = 30.0  # seconds between writes, and the longest beat sleeps between ticks
# Kept long past staleness so a probe can still say when beat was last seen.
HEARTBEAT_TTL = 24 * 3600  # seconds


def write_heartbeat(client: redis.Redis) -> float:
    """Record now (Unix time, seconds) as beat's last sign of life; returns it."""
    return _write_time(client, HEARTBEAT_KEY)


def write_started(client: redis.Redis) -> float:
    """Record now (Unix time, seconds) as when the running beat started; returns it."""
    return _write_time(client, STARTED_KEY)


def read_heartbeat(client: redis.Redis) -> float | None:
    """When beat last wrote its heartbeat (Unix time), or None if it never did."""
    return _read_time(client, HEARTBEAT_KEY)


def read_started(client: redis.Redis) -> float | None:
    """When the running beat started (Unix time), or None if no beat recorded it."""
    return _read_time(client, STARTED_KEY)


def _write_time(client: redis.Redis, key: str) -> float:
    now = time.time()
    client.set(key, repr(now), ex=HEARTBEAT_TTL)
    return now


def _read_time(client: redis.Redis, key: str) -> float | None:
    # redis-py types every reply as maybe-awaitable; this sync client returns bytes.
    raw = cast("bytes | None", client.get(key))
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None
