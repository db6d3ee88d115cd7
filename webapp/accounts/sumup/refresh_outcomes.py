"""How queued token refreshes ended: counts by outcome in Redis.

Each queued refresh adds its outcome twice, in one round trip: to the counts since the
last sweep's log line (the sweep logs them and starts them again; metrics read them as
they stand, operations.metrics), and to the hash of the UTC hour it ended in, by minute,
which the staff overview reads for its last 24 hours and its last hour. An hour's hash
expires after `HOUR_TTL`, so nothing needs clearing.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from accounts.sumup.refresh import Outcome
from events import shared_redis

OUTCOMES_KEY = "sumup:refresh:outcomes"  # counts by outcome since the last sweep's log line
TAKEN_AT_KEY = "sumup:refresh:outcomes:taken-at"  # Unix time of the last take (a sweep)
HOUR_KEY = "sumup:refresh:outcomes:hour:{hour}"  # `hour` in UTC, e.g. 2026-12-04T21
HOUR_TTL = 49 * 3600  # seconds: a day of hours to chart, and a day to spare
_FIELD_SEPARATOR = "@"  # an hour's fields are "<outcome>@<minute>", e.g. "refreshed@07"


@dataclass(frozen=True)
class Hour:
    """The outcomes of one UTC hour, by outcome (only those that happened)."""

    start: datetime  # aware, UTC, on the hour
    counts: dict[str, int]


def hour_key(moment: datetime) -> str:
    return HOUR_KEY.format(hour=moment.astimezone(UTC).strftime("%Y-%m-%dT%H"))


def count(outcome: Outcome) -> None:
    now = datetime.now(UTC)
    key = hour_key(now)
    pipe = shared_redis.client().pipeline()
    pipe.hincrby(OUTCOMES_KEY, outcome.value, 1)
    pipe.hincrby(key, f"{outcome.value}{_FIELD_SEPARATOR}{now.minute:02d}", 1)
    pipe.expire(key, HOUR_TTL)
    pipe.execute()


def pending() -> dict[str, int]:
    """The counts since the last sweep's log line, by outcome."""
    counts: dict[bytes, bytes] = shared_redis.client().hgetall(OUTCOMES_KEY)  # type: ignore[assignment]
    return {key.decode(): int(value) for key, value in counts.items()}


def take() -> dict[str, int]:
    """The counts since the last take, by outcome, started again from nothing; when it
    happened is kept (`last_taken`): each sweep takes them."""
    pipe = shared_redis.client().pipeline()
    pipe.hgetall(OUTCOMES_KEY)
    pipe.delete(OUTCOMES_KEY)
    pipe.set(TAKEN_AT_KEY, repr(time.time()))
    return {key.decode(): int(value) for key, value in pipe.execute()[0].items()}


def last_taken() -> datetime | None:
    """When the counts were last taken, i.e. when the last sweep ran; None if never."""
    raw = cast("bytes | None", shared_redis.client().get(TAKEN_AT_KEY))
    try:
        return datetime.fromtimestamp(float(raw), UTC) if raw is not None else None
    except ValueError:
        return None


def by_hour(hours: int, now: datetime | None = None) -> list[Hour]:
    """The last `hours` UTC hours, oldest first; the last is the hour under way."""
    current = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    starts = [current - timedelta(hours=back) for back in range(hours - 1, -1, -1)]
    minutes = _read_hours(starts)
    return [
        Hour(start, _total(by_minute.items()))
        for start, by_minute in zip(starts, minutes, strict=True)
    ]


def last_hour(now: datetime | None = None) -> dict[str, int]:
    """The outcomes of the last 60 minutes (this minute included), by outcome."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    current = now.replace(minute=0, second=0, microsecond=0)
    before, this = _read_hours([current - timedelta(hours=1), current])
    # The hour before counts from the minute after this one's: 60 minutes in all.
    kept = [item for item in before.items() if item[0][1] > now.minute]
    return _total([*kept, *this.items()])


def _read_hours(starts: list[datetime]) -> list[dict[tuple[str, int], int]]:
    """Each hour's counts by (outcome, minute), in the order of `starts`."""
    pipe = shared_redis.client().pipeline(transaction=False)
    for start in starts:
        pipe.hgetall(hour_key(start))
    return [_by_minute(raw) for raw in pipe.execute()]


def _by_minute(raw: dict[bytes, bytes]) -> dict[tuple[str, int], int]:
    counts: dict[tuple[str, int], int] = {}
    for field, value in raw.items():
        outcome, _, minute = field.decode().partition(_FIELD_SEPARATOR)
        if minute.isdigit():
            counts[outcome, int(minute)] = int(value)
    return counts


def _total(items: Iterable[tuple[tuple[str, int], int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (outcome, _minute), value in items:
        totals[outcome] = totals.get(outcome, 0) + value
    return totals
