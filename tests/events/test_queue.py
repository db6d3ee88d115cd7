"""events.queue, the one door to the queue: a task is published by its name once the
transaction that decided it commits, with its options, and a process that never loaded
`jobs/` (the web) publishes it all the same."""

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events import queue

# No worker consumes this queue: what is published there stays to be read.
TEST_QUEUE = "events-queue-test"
SUBPROCESS_TIMEOUT = 60  # seconds for a fresh interpreter to set Django up and publish

# What the web process does before it queues anything: load the settings and every
# module the URLconf routes to, then publish through the door.
WEB_PROCESS = """
import json, sys
import django

django.setup()
from django.urls import get_resolver

get_resolver().url_patterns
from events import queue

queue.enqueue("jobs.health.ping", queue=sys.argv[1], retry=False)
print(json.dumps(sorted(m for m in sys.modules if m == "jobs" or m.startswith("jobs."))))
"""


@dataclass(frozen=True)
class Message:
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    headers: dict[str, Any]


class Rollback(Exception):
    pass


@pytest.fixture
def published() -> Iterator[Callable[[], list[Message]]]:
    """The messages published to TEST_QUEUE, in the order they were published."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(TEST_QUEUE)

    def read() -> list[Message]:
        # The Redis transport pushes each message on the left of the queue's list.
        raw = cast(list[bytes], client.lrange(TEST_QUEUE, 0, -1))
        messages = []
        for item in reversed(raw):
            envelope = json.loads(item)
            args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
            headers = envelope["headers"]
            messages.append(Message(headers["task"], args, kwargs, headers))
        return messages

    yield read
    client.delete(TEST_QUEUE)
    client.close()


@pytest.mark.django_db(transaction=True)
def test_a_task_is_published_once_the_transaction_commits(published):
    with transaction.atomic():
        queue.enqueue("jobs.backfills.run_slice", args=(7, 2), queue=TEST_QUEUE)
        assert published() == [], "nothing leaves before the commit"

    (message,) = published()
    assert (message.task, message.args, message.kwargs) == ("jobs.backfills.run_slice", [7, 2], {})


@pytest.mark.django_db(transaction=True)
def test_a_task_decided_in_a_transaction_that_rolls_back_is_never_published(published):
    with pytest.raises(Rollback), transaction.atomic():
        queue.enqueue("jobs.backfills.run_slice", args=(7, 2), queue=TEST_QUEUE)
        raise Rollback

    assert published() == []


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_task_is_published_at_once_with_its_arguments(published):
    queue.enqueue(
        "jobs.token_refresh.refresh_artist",
        args=(3,),
        kwargs={"probe": True},
        countdown=30,
        queue=TEST_QUEUE,
    )

    (message,) = published()
    assert (message.args, message.kwargs) == ([3], {"probe": True})
    eta = datetime.fromisoformat(message.headers["eta"])
    assert timezone.now() + timedelta(seconds=25) < eta <= timezone.now() + timedelta(seconds=30)
    assert message.headers["ignore_result"] is True, "nobody waits for a result"


@pytest.mark.django_db(transaction=True)
def test_many_calls_are_published_in_their_order_each_with_its_options(published):
    now = timezone.now()
    due = [now + timedelta(seconds=seconds) for seconds in (30, 10, 20)]

    with transaction.atomic():
        queue.enqueue_many(
            "jobs.campaigns.send",
            [(([n],), {"eta": at, "queue": TEST_QUEUE}) for n, at in enumerate(due, start=1)],
        )
        assert published() == []

    messages = published()
    assert [(m.task, m.args) for m in messages] == [
        ("jobs.campaigns.send", [[1]]),
        ("jobs.campaigns.send", [[2]]),
        ("jobs.campaigns.send", [[3]]),
    ]
    assert [datetime.fromisoformat(m.headers["eta"]) for m in messages] == due


def test_a_process_that_never_loads_jobs_publishes_by_name(published):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "events.settings_development",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }

    done = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS, TEST_QUEUE],
        cwd=settings.PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [], "the web loaded part of jobs/"
    assert [(m.task, m.args) for m in published()] == [("jobs.health.ping", [])]
