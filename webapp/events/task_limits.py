"""How long each task may run, in one table. The workers apply these (jobs.options); the
web measures settings against them without loading a task: the broker's visibility
timeout must outlast a running task, or Redis hands it to a second worker
(campaigns.E001).

Past its soft limit a task gets SoftTimeLimitExceeded and can stop cleanly; at its hard
limit the worker kills its process.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class TimeLimit:
    hard: int  # seconds
    soft: int | None = None  # seconds; None: the project's default (CELERY_TASK_SOFT_TIME_LIMIT)


HEALTH_PING = TimeLimit(hard=10, soft=5)
# A slice runs batches for SLICE_SECONDS (jobs.backfills), then hands over to the next.
BACKFILL_SLICE = TimeLimit(hard=120, soft=90)
BACKFILL_RECOVER = TimeLimit(hard=60, soft=50)
# A send, a dispatch tick, and the recovery of campaigns alike.
CAMPAIGN = TimeLimit(hard=60, soft=45)
REFRESH_SWEEP = TimeLimit(hard=300)
REFRESH_DISPATCH = TimeLimit(hard=60, soft=50)
REFRESH_ARTIST = TimeLimit(hard=90, soft=60)
# Counting connections by status: one grouped query and an upsert.
CONNECTION_HISTORY = TimeLimit(hard=60, soft=50)
