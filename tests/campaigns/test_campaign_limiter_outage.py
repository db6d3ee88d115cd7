"""A campaign on a real `celery -A jobs worker` process whose rate limiter loses its
Redis mid-campaign: nothing is marked unknown for a request that was never made, and
once Redis is back every recipient is sent to exactly once."""

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from campaigns import services
from campaigns.models import Campaign, Recipient
from fakes.brevo import FakeBrevo

if TYPE_CHECKING:
    from tests.support import polling
    from tests.support.rehearsal import PrivateRedis
    from tests.support.worker_processes import WorkerProcesses, purge_queue
else:
    from support import polling
    from support.rehearsal import PrivateRedis
    from support.worker_processes import WorkerProcesses, purge_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]
S = Recipient.Status
DEADLINE = 90.0  # seconds any wait below may take on a slow machine before the test fails
OUTAGE_SECONDS = 8.0
LIMITER_DOWN = "rate limiter unavailable, nothing sent: ConnectionError"


def wait_for(condition: Callable[[], object], what: str, workers: WorkerProcesses) -> None:
    polling.wait_for(condition, what, DEADLINE, explain=workers.log_tails)


def counts(campaign: Campaign) -> dict[str, int]:
    return Campaign.objects.get(pk=campaign.pk).counts()


def test_a_limiter_that_loses_redis_mid_campaign_delays_sends_and_loses_none(
    esp: FakeBrevo, artists: Callable[..., list[Any]], settings: Any, tmp_path: Path
) -> None:
    people = artists(40)
    purge_queue()
    with PrivateRedis() as limiter_redis:
        settings.REDIS_URL = limiter_redis.url  # the workers' limiter; the broker stays
        env = {**esp.environ(), "EMAIL_RETRY_BACKOFF": "1"}
        with WorkerProcesses(1, log_dir=tmp_path / "workers", concurrency=2, env=env) as workers:
            campaign = services.create(Campaign(name="Reconnect", rate_limit="10/s"), actor="test")
            services.start(campaign.pk, actor="test")
            wait_for(lambda: counts(campaign)["sent"] >= 5, "the first sends", workers)

            limiter_redis.stop()
            wait_for(
                lambda: campaign.recipients.filter(last_error=LIMITER_DOWN).exists(),
                "a send to meet the stopped limiter",
                workers,
            )
            time.sleep(OUTAGE_SECONDS)
            during = counts(campaign)
            arrivals_during = len(esp.state.arrivals)
            limiter_redis.start()
            back = time.monotonic()

            wait_for(
                lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE,
                "the campaign to finish",
                workers,
            )
            recovered_in = time.monotonic() - back
    purge_queue()

    assert during["unknown"] == during["failed"] == 0, during
    assert during["queued"] > 0, "sends waited for the limiter"
    assert len(esp.state.arrivals) > arrivals_during, "sending went on once Redis was back"
    assert counts(campaign)["sent"] == 40
    assert Counter(arrival.to for arrival in esp.state.arrivals) == {
        artist.user.email: 1 for artist in people
    }
    assert recovered_in < 60, f"finished {recovered_in:.0f} s after Redis came back"
