"""Email campaigns on the workers: the sends of a batch of recipients, the dispatch chain that
feeds a campaign at its rate, and beat's recovery of work lost with a worker.

Every task is thin and safe to run twice (see campaigns.sending for the claim protocol).
Sends use `acks_late` with `reject_on_worker_lost`: a message is acknowledged only once
its task returned, so a worker that dies hands it back to Redis, which redelivers it
after `CELERY_VISIBILITY_TIMEOUT` (3600 s by default; it must exceed every campaign
task's hard time limit, checked at start-up as campaigns.E001). A redelivered send finds
its row claimed or finished and does nothing; a row left `sending` by the dead worker
is settled by `recover` with the provider's log (campaigns.reconcile): sent, queued
again under the same idempotency key, or `unknown` for staff.

Countdowns stay a few seconds long (a slot of the rate, the next tick), far below the
visibility timeout, so a waiting task is never redelivered while it waits.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from campaigns import dispatch as dispatching
from campaigns import sending
from events import task_limits
from jobs import options


@shared_task(bind=True, name="jobs.campaigns.send", **options.at_least_once(task_limits.CAMPAIGN))
def send(self: Any, recipient_ids: list[int]) -> int:
    """Send to these recipients, many to a provider request where the provider takes
    batches (campaigns.sending), skipping any that was sent, is claimed or is no longer
    due; returns how many it dealt with.

    A request a little early for its slots of the campaign's rate waits for them, at
    most `sending.WAIT_AT_MOST` (0.2 s); from the first request further over the rate,
    the rest go back to the campaign's schedule, or re-queue themselves for when the
    slots free if that is within the same 0.2 s; those it had no time for
    (`sending.BATCH_SECONDS`) re-queue themselves at once.
    """
    rest, wait = sending.send_batch(recipient_ids)
    if rest:
        self.apply_async((rest,), countdown=wait)
    return len(recipient_ids) - len(rest)


@shared_task(name="jobs.campaigns.dispatch_tick", **options.at_least_once(task_limits.CAMPAIGN))
def dispatch_tick(campaign_id: int, token: str) -> bool:
    """One tick of a campaign's dispatch chain; re-queues itself while there is work."""
    return _tick(campaign_id, token)


@shared_task(name="jobs.campaigns.dispatch", **options.at_least_once(task_limits.CAMPAIGN))
def dispatch_tick_by_former_name(campaign_id: int, token: str) -> bool:
    """`dispatch_tick` under the name it had until it was renamed: a tick queued by the
    release before still runs after a deploy, and its chain goes on under the new name."""
    return _tick(campaign_id, token)


def _tick(campaign_id: int, token: str) -> bool:
    delay = dispatching.tick(campaign_id, token)
    if delay is not None:
        dispatch_tick.apply_async((campaign_id, token), countdown=delay)
    return delay is not None


@shared_task(name="jobs.campaigns.recover", **options.at_most_once(task_limits.CAMPAIGN))
def recover() -> dict[str, Any]:
    """Beat's safety net: lapsed claims are settled with the provider, stalled campaigns
    move again."""
    report = dispatching.recover()
    return {
        "lost_claims": report.lost_claims,
        "confirmed_sent": report.confirmed_sent,
        "sent_again": report.sent_again,
        "marked_unknown": report.marked_unknown,
        "unconfirmed": report.unconfirmed,
        "redispatched": report.redispatched,
        "kicked": report.kicked,
        "finished": report.finished,
        "unstalled": report.unstalled,
    }
