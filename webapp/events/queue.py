"""The one door to the queue for domain code, migrations and operations: a task is
enqueued by its name, once the transaction that decided it commits.

    queue.enqueue("jobs.backfills.recover", retry=False)
    queue.enqueue("jobs.campaigns.dispatch_tick", args=(campaign_id, token))
    queue.enqueue_many("jobs.campaigns.send", [((chunk,), {"eta": due}), ...])

Callers name a task and never import it, so nothing but the Celery app loads `jobs/`,
and a task can move without touching its callers. Publishing waits for the commit
(`transaction.on_commit`; at once when no transaction is open): a worker never picks up
work whose rows it cannot see yet, and work decided in a transaction that rolls back is
never queued. Options are Celery's `apply_async` options (countdown, eta, retry...).

A process that has the task loaded (a worker, or tests running tasks eagerly) applies it
as the task's own `apply_async` would; any other process, the web's, sends it by name.
"""

from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from django.db import transaction

from events.celery_app import app

# (args, kwargs, options) of one task to publish.
Call = tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]


def enqueue(
    task: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
) -> None:
    """Queue `task` with these arguments once the current transaction commits."""
    call: Call = (tuple(args), dict(kwargs or {}), options)
    transaction.on_commit(partial(_publish, task, [call]))


def enqueue_many(task: str, calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]]) -> None:
    """Queue `task` once per (args, options) once the current transaction commits, all
    through one producer, in their order."""
    batch: list[Call] = [(tuple(args), {}, dict(options)) for args, options in calls]
    if batch:
        transaction.on_commit(partial(_publish, task, batch))


def _publish(task: str, calls: list[Call]) -> None:
    with app.producer_or_acquire() as producer:
        for args, kwargs, options in calls:
            # Nobody waits on a task queued here: without this, a process that sends by
            # name would subscribe to each task's result channel and never let go.
            options = {"ignore_result": True, **options}
            app.signature(task, args, kwargs, **options).apply_async(producer=producer)
