"""The dispatch chain's task was renamed: `jobs.campaigns.dispatch` (a task named like the
module campaigns.dispatch) is now `jobs.campaigns.dispatch_tick`. A tick queued under
the former name by the release before still runs after a deploy, and its chain goes on
under the new name."""

from typing import TYPE_CHECKING, Any

import pytest
from celery.signals import before_task_publish

from campaigns.models import Campaign
from jobs import app

if TYPE_CHECKING:
    from tests.support.worker_processes import purge_queue
else:
    from support.worker_processes import purge_queue

pytestmark = pytest.mark.django_db

NEW_NAME = "jobs.campaigns.dispatch_tick"
FORMER_NAME = "jobs.campaigns.dispatch"
SHARED_OPTIONS = ("acks_late", "reject_on_worker_lost", "ignore_result", "time_limit")


def test_the_former_name_is_registered_with_the_options_of_the_new():
    new, former = app.tasks[NEW_NAME], app.tasks[FORMER_NAME]

    assert new.acks_late and new.reject_on_worker_lost, "a tick survives its worker"
    for option in (*SHARED_OPTIONS, "soft_time_limit"):
        assert getattr(former, option) == getattr(new, option), option


def test_a_tick_queued_under_the_former_name_hands_out_sends_and_queues_the_next_tick(
    artists, started, django_capture_on_commit_callbacks
):
    artists(2)
    campaign = started(rate_limit="10/s")
    Campaign.objects.filter(pk=campaign.pk).update(dispatch_token="chain")
    purge_queue()
    published: list[tuple[str, list[Any]]] = []

    def record(headers: dict[str, Any], body: Any, **kwargs: Any) -> None:
        published.append((headers["task"], list(body[0])))

    before_task_publish.connect(record, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert app.tasks[FORMER_NAME].run(campaign.pk, "chain") is True
    finally:
        before_task_publish.disconnect(record)
        purge_queue()

    recipients = sorted(campaign.recipients.values_list("pk", flat=True))
    sent_to = sorted(
        pk for task, args in published if task == "jobs.campaigns.send" for pk in args[0]
    )
    assert sent_to == recipients
    assert [args for task, args in published if task == NEW_NAME] == [[campaign.pk, "chain"]]
    assert not [task for task, _ in published if task == FORMER_NAME]
