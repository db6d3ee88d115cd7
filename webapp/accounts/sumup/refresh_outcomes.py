"""How queued token refreshes ended since the last sweep's log line: counts by outcome in
Redis. Each queued refresh adds its outcome; the sweep logs the counts and starts them
again; metrics read them as they stand (operations.metrics)."""

from accounts.sumup.refresh import Outcome
from events import shared_redis

OUTCOMES_KEY = "sumup:refresh:outcomes"  # counts by outcome since the last sweep's log line


def count(outcome: Outcome) -> None:
    shared_redis.client().hincrby(OUTCOMES_KEY, outcome.value, 1)


def pending() -> dict[str, int]:
    """The counts since the last sweep's log line, by outcome."""
    counts: dict[bytes, bytes] = shared_redis.client().hgetall(OUTCOMES_KEY)  # type: ignore[assignment]
    return {key.decode(): int(value) for key, value in counts.items()}


def take() -> dict[str, int]:
    """The counts since the last take, by outcome, started again from nothing."""
    pipe = shared_redis.client().pipeline()
    pipe.hgetall(OUTCOMES_KEY)
    pipe.delete(OUTCOMES_KEY)
    return {key.decode(): int(value) for key, value in pipe.execute()[0].items()}
