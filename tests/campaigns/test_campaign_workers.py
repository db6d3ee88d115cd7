"""Campaigns on real `celery -A jobs worker` processes, sending through anymail's real
Brevo backend to the fake Brevo on loopback: the global rate across workers, a worker
killed inside the provider call, and the whole fault mix at once."""

import os
import re
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.utils import timezone

from accounts.models import ArtistProfile, ConnectionStatus
from campaigns import dispatch, services
from campaigns.models import Campaign, Recipient, Suppression
from fakes.brevo import FakeBrevo
from jobs import app

if TYPE_CHECKING:
    from tests.support import polling
    from tests.support.worker_processes import WorkerProcesses, purge_queue
else:
    from support import polling
    from support.worker_processes import WorkerProcesses, purge_queue

# Real worker subprocesses: a pytest session of their own (scripts/test), where no
# in-process worker thread consumes their tasks.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]
S = Recipient.Status
DEADLINE = 90.0  # seconds any wait below may take on a slow machine before the test fails
LONG_AGO = timedelta(minutes=10)  # past every claim, heartbeat and hand-out limit


@pytest.fixture
def worker_processes(tmp_path: Path, esp: FakeBrevo) -> Iterator[Callable[..., WorkerProcesses]]:
    """Start worker processes that send through the fake Brevo; all stopped afterwards."""
    started: list[WorkerProcesses] = []
    purge_queue()

    def start(count: int, **options: Any) -> WorkerProcesses:
        env = {**esp.environ(), "EMAIL_RETRY_BACKOFF": "1", **options.pop("env", {})}
        options.setdefault("pool", "prefork")
        workers = WorkerProcesses(
            count, log_dir=tmp_path / f"workers{len(started)}", env=env, **options
        )
        started.append(workers)
        return workers.start()

    yield start
    esp.state.release.set()
    for workers in started:
        workers.stop()
    purge_queue()


def wait_for(condition: Callable[[], object], what: str, *workers: WorkerProcesses) -> None:
    def tails() -> str:
        return "\n".join(group.log_tails() for group in workers)

    polling.wait_for(condition, what, DEADLINE, explain=tails)


def finished(campaign: Campaign) -> Callable[[], bool]:
    return lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE


def start_campaign(**fields: Any) -> Campaign:
    campaign = services.create(Campaign(name="Reconnect", **fields), actor="test")
    services.start(campaign.pk, actor="test")  # the dispatch chain is queued on commit
    return campaign


SLOT = re.compile(r"email slots \((\d+)\) at .* granted between ([0-9.]+) and ([0-9.]+)")


def granted_slots(workers: WorkerProcesses) -> list[tuple[float, float]]:
    """Each slot of the rate the workers took (one a message; a request's together), as
    the (before, after) instants around the limiter's own stamp (from their INFO log)."""
    logs = (workers.log_dir / f"worker-{i}.log" for i in range(workers.count))
    return [
        (float(b), float(a))
        for log in logs
        for n, b, a in SLOT.findall(log.read_text())
        for _ in range(int(n))
    ]


def most_slots_in_one_second(slots: list[tuple[float, float]]) -> int:
    """The most slots certainly stamped inside one window [start, start + 1 s): a bound
    the limiter must keep whatever the scheduling delays around its stamps."""
    return max(
        sum(1 for before, after in slots if start <= before and after < start + 1.0)
        for start, _ in slots
    )


def holder_of(recipient: Recipient, workers: WorkerProcesses) -> tuple[int, int]:
    """(index of the worker, pid of its pool process) running this recipient's send."""
    names = [worker.hostname for worker in workers.workers]
    active = app.control.inspect(destination=names, timeout=2).active() or {}
    for name, tasks in active.items():
        for task in tasks:
            if task["name"] == "jobs.campaigns.send" and recipient.pk in task["args"][0]:
                return names.index(name), int(task["worker_pid"])
    raise AssertionError(f"no worker is sending to recipient {recipient.pk}: {active}")


def as_if_long_ago(campaign: Campaign, *claims: Recipient) -> None:
    """Age the named claims, the campaign's heartbeat and its hand-outs as if minutes had
    passed (claims of sends still in flight elsewhere are left alone)."""
    past = timezone.now() - LONG_AGO
    Recipient.objects.filter(pk__in=[r.pk for r in claims]).update(claimed_until=past)
    Campaign.objects.filter(pk=campaign.pk).update(dispatch_heartbeat=past)
    campaign.recipients.filter(status=S.QUEUED).exclude(dispatched_at=None).update(
        dispatched_at=past
    )


def test_two_workers_never_exceed_the_rate_even_when_every_send_is_queued_at_once(
    esp, artists, worker_processes
):
    people = artists(30)
    workers = worker_processes(2, concurrency=3)

    campaign = start_campaign(rate_limit="5/s")
    # Besides the paced dispatch: every send at once, as a storm of redeliveries would.
    dispatch.enqueue_sends(list(campaign.recipients.values_list("pk", flat=True)))
    wait_for(finished(campaign), "the campaign to finish", workers)

    assert Counter(arrival.to for arrival in esp.state.arrivals) == {
        artist.user.email: 1 for artist in people
    }
    slots = granted_slots(workers)
    assert len(slots) == 30
    assert most_slots_in_one_second(slots) <= 5
    for log in ("worker-0.log", "worker-1.log"):
        assert SLOT.search((workers.log_dir / log).read_text()), f"{log}: both workers sent"


def test_batches_at_the_rate_never_put_more_messages_in_a_second_at_the_provider(
    esp, artists, worker_processes
):
    people = artists(150)
    workers = worker_processes(2, concurrency=2)

    campaign = start_campaign(rate_limit="50/s")  # batches of 5 (a tenth of a second)
    wait_for(finished(campaign), "the campaign to finish", workers)

    assert Counter(arrival.to for arrival in esp.state.arrivals) == {
        artist.user.email: 1 for artist in people
    }
    assert max(len(request) for request in esp.state.requests) == 5, "sent in batches"
    assert len(esp.state.requests) <= 40
    arrivals = sorted(arrival.at for arrival in esp.state.arrivals)
    busiest = max(
        sum(1 for at in arrivals[i:] if at < start + 1.0) for i, start in enumerate(arrivals)
    )
    assert busiest <= 50, f"{busiest} messages in one second at the provider"
    assert busiest >= 40, "the rate is used, not just kept"
    assert most_slots_in_one_second(granted_slots(workers)) <= 50


def test_a_pool_process_killed_mid_batch_is_not_resent_by_redelivery_but_once_by_recovery(
    esp, artists, worker_processes
):
    people = artists(8)
    victim = people[3]
    esp.state.reset(hang={victim.user.email})  # holds the whole request the victim is in
    workers = worker_processes(2, concurrency=1)
    campaign = start_campaign(rate_limit="")
    recipient = campaign.recipients.get(artist=victim)

    wait_for(lambda: esp.state.hung, "the batch to reach the provider", workers)
    assert sorted(esp.state.hung) == sorted(a.user.email for a in people), "one request"
    _, pool_pid = holder_of(recipient, workers)
    os.kill(pool_pid, signal.SIGKILL)  # reject_on_worker_lost hands the task back at once
    wait_for(
        lambda: campaign.recipients.filter(status=S.SENDING, attempts=1).count() == 8,
        "the batch to stay claimed",
        workers,
    )
    assert len(esp.state.hung) == 8 and esp.state.accepted == [], "the redelivery resent"
    esp.state.faults.hang.clear()  # the provider, which never took it, answers again
    batch = list(campaign.recipients.all())
    as_if_long_ago(campaign, *batch)
    report = dispatch.recover()
    assert (report.lost_claims, report.sent_again) == (8, 8), "the provider's log has none"
    wait_for(finished(campaign), "the campaign to finish", workers)

    assert campaign.counts()["sent"] == 8
    assert set(campaign.recipients.values_list("attempts", flat=True)) == {2}
    assert all(esp.state.accepted_for(a.user.email) == 1 for a in people)
    (key,) = {str(row.batch_key) for row in batch}
    assert {m.idempotency_key for m in esp.state.accepted} == {key}, "resent under its key"
    assert len(esp.state.arrivals) == 16, "one request held, one request sent"


def test_with_faults_and_a_killed_worker_no_artist_gets_two_emails_and_none_is_lost(
    esp, artists, make_artist, worker_processes
):
    eligible = artists(40)
    victim = eligible[7]
    connected = make_artist(is_approved=True)
    connected.update_sumup_connection({"access_token": "a", "expires_in": 3600})
    unapproved = make_artist(is_approved=False)
    suppressed = make_artist(is_approved=True)
    Suppression.objects.create(email=suppressed.user.email, reason="bounced")
    reconnects_later = eligible[-1]  # sent last: still queued when they reconnect
    esp.state.reset(
        hang={victim.user.email},
        error_rate=0.3,
        accepted_error_rate=0.1,
        error_statuses=(429, 500, 502, 503),
        max_errors_per_address=2,
        seed=6,
    )
    workers = worker_processes(3, concurrency=1)  # the victim's worker runs nothing else
    campaign = start_campaign(rate_limit="20/s", approved_only=True)
    recipient = campaign.recipients.get(artist=victim)
    ArtistProfile.objects.filter(pk=reconnects_later.pk).update(
        sumup_connection_status=ConnectionStatus.CONNECTED
    )

    wait_for(lambda: esp.state.hung, "the victim's send to reach the provider", workers)
    index, _ = holder_of(recipient, workers)
    workers.kill(index)  # the whole worker, as if its machine died
    esp.state.faults.hang.clear()  # the provider never took the victim's request
    recipient.refresh_from_db()
    batch = list(campaign.recipients.filter(batch_key=recipient.batch_key))  # one claim
    as_if_long_ago(campaign, *batch)
    assert dispatch.recover().sent_again == len(batch) == 2, "batches of 2 at 20/s"
    wait_for(finished(campaign), "the campaign to finish", workers)

    accepted = Counter(message.to for message in esp.state.accepted)
    assert max(accepted.values()) == 1, "no artist gets two emails"
    must_get = {a.user.email for a in eligible} - {reconnects_later.user.email}
    assert set(accepted) == must_get, "the victim's send was settled and sent once"
    assert campaign.recipients.get(artist=reconnects_later).status == S.SKIPPED
    assert not campaign.recipients.filter(status=S.UNKNOWN).exists()
    recipient.refresh_from_db()
    assert recipient.status == S.SENT and recipient.attempts >= 2, "sent again, maybe retried"
    assert most_slots_in_one_second(granted_slots(workers)) <= 20
    assert any(arrival.status >= 429 for arrival in esp.state.arrivals), "faults happened"
    assert not {connected.pk, unapproved.pk} & set(
        campaign.recipients.values_list("artist", flat=True)
    )
    assert campaign.recipients.get(artist=suppressed).status == S.SKIPPED
