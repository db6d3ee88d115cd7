"""Keeping every SumUp connection alive on the workers: beat's sweep, the dispatcher's
rounds, and the refresh of one artist. Each task calls one function of the domain and
queues what it says comes next: accounts.sumup.sweep says how due artists are claimed
and handed out a few seconds at a time, accounts.sumup.queued_refresh how one refresh
comes back after a refusal or a transient failure.
"""

from __future__ import annotations

from celery import shared_task

from accounts.sumup import queued_refresh
from accounts.sumup import sweep as sweeping
from events import task_limits
from jobs import options


@shared_task(name="jobs.token_refresh.sweep", **options.at_most_once(task_limits.REFRESH_SWEEP))
def sweep() -> int:
    """Beat's entry point: queue refreshes for every due artist (`run_sweep`)."""
    return len(sweeping.run_sweep().enqueued)


@shared_task(
    name="jobs.token_refresh.dispatch", **options.at_most_once(task_limits.REFRESH_DISPATCH)
)
def dispatch(lease: str) -> int:
    """A round of the dispatcher (`dispatch_round`); the chain comes back in
    `DISPATCH_EVERY` seconds while due work is left."""
    done = sweeping.dispatch_round(lease)
    if done.more:
        dispatch.apply_async((lease,), countdown=sweeping.DISPATCH_EVERY)
    return done.queued


@shared_task(
    name="jobs.token_refresh.refresh_artist",
    **options.at_least_once(task_limits.REFRESH_ARTIST),
)
def refresh_artist(
    profile_id: int, attempt: int = 0, probe: bool = False, booked: float = 0.0, refused: int = 0
) -> str:
    """Refresh one artist's SumUp tokens (`queued_refresh.run`), and queue it again when
    it must come back; safe to run twice. It waits in place only for a slot of the
    budget that frees within `refresh.BUDGET_WAIT_AT_MOST` (0.2 s); any other wait is a
    countdown of at most `queued_refresh.MAX_COUNTDOWN`, or a time in the row."""
    step = queued_refresh.run(profile_id, attempt, probe, booked, refused)
    if step.then is not None:
        refresh_artist.apply_async(step.then.args, countdown=step.then.countdown)
    return step.outcome.value
