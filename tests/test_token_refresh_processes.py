"""The scheduled token refresh with real worker processes: two `celery -A jobs worker`
subprocesses, two sweeps at once, every task delivered twice, a fake SumUp that rotates
refresh tokens strictly and rejects reuse, and faults on its token endpoint."""

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core.mail import EmailMessage

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup import client
from events import redis
from jobs import app, token_refresh
from sumup_fake import FakeSumUp

# pytest imports test modules by basename, with tests/ on sys.path (there is no
# tests/__init__.py); mypy names them from the project root.
if TYPE_CHECKING:
    from tests.support.worker_processes import WorkerProcesses, purge_queue, sent_mail
else:
    from support.worker_processes import WorkerProcesses, purge_queue, sent_mail

LIVE, REVOKED = 16, 3
SLOTS_PER_WORKER = LIVE + REVOKED  # two workers: a slot for each of the 2 x 19 tasks
FAULTS = (("token", 503, {"count": 3}), ("token", 429, {"retry_after": 1}))
FAULT_CALLS = sum(options.get("count", 1) for _, _, options in FAULTS)
DEADLINE_S = 20.0  # per wait; a 503 waits for the default backoff: 5 s x 2**0 x <= 1.5

# The in-process worker thread of other tests would consume these tasks too.
pytestmark = pytest.mark.processes


@dataclass(frozen=True)
class Connection:
    """An artist connected through a real grant at the fake."""

    profile: ArtistProfile
    sumup_email: str  # the artist's login at the fake SumUp
    grant_id: str


@pytest.fixture
def connect(make_artist, sumup: FakeSumUp) -> Callable[[], Connection]:
    counter = iter(range(1, 10_000))

    def make() -> Connection:
        n = next(counter)
        email, merchant = f"merchant{n}@example.com", f"MP{n:06d}"
        sumup.add_user(email, [{"code": merchant, "name": f"Merchant {n}"}])
        token = sumup.mint_grant(email)
        grant = sumup.state.grant_for_token(token["refresh_token"])
        assert grant is not None
        profile: ArtistProfile = make_artist()
        # expiring in 2 minutes: inside the refresh window, so the sweep finds it due
        profile.update_sumup_connection({**token, "expires_in": 120, "merchant_code": merchant})
        return Connection(profile, email, grant.id)

    return make


@pytest.fixture
def worker_processes(tmp_path: Path) -> Iterator[Callable[..., WorkerProcesses]]:
    """Start real worker processes on the test database; all stopped after the test."""
    started: list[WorkerProcesses] = []
    purge_queue()

    def start(count: int, **options: Any) -> WorkerProcesses:
        workers = WorkerProcesses(count, log_dir=tmp_path / "workers", **options)
        started.append(workers)
        return workers.start()

    yield start
    for workers in started:
        workers.stop()
    purge_queue()


def successful_refreshes(sumup: FakeSumUp, grant_id: str) -> int:
    """Token calls the fake answered with new tokens, for one grant: each success uses a
    refresh token once (a reused, rotated-out one is refused, never counted)."""
    with sumup.state.lock:
        return sum(t.uses for t in sumup.state.refresh_tokens.values() if t.grant_id == grant_id)


def holds_live_grant(sumup: FakeSumUp, profile: ArtistProfile) -> bool:
    """The stored refresh token is the grant's current one and the access token works."""
    record = sumup.state.refresh_tokens.get(profile.sumup_refresh_token or "")
    if record is None or record.replaced_by is not None:
        return False
    client.merchant_memberships(profile.sumup_access_token or "")  # raises if refused
    return True


def run_two_sweeps() -> list[list[int]]:
    """Two sweeps at once, as two beats would run them. Not `exclusive`: as if the sweep
    lock had lapsed, so only the per-artist enqueue claim keeps an artist queued once."""
    enqueued: list[list[int]] = []
    start = threading.Barrier(2)

    def sweep() -> None:
        from django.db import connections

        start.wait()
        try:
            enqueued.append(token_refresh.run_sweep(exclusive=False).enqueued)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return enqueued


def wait_until(workers: WorkerProcesses, done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        workers.check_alive()
        assert time.monotonic() < deadline, f"{what}: not done in time\n{workers.log_tails()}"
        time.sleep(0.2)


def refreshes_settled(artists: list[Connection]) -> bool:
    """No artist has refresh work queued, and every one still connected is refreshed."""
    profiles = ArtistProfile.objects.filter(pk__in=[a.profile.pk for a in artists])
    return not (
        profiles.filter(sumup_refresh_enqueued_at__isnull=False).exists()
        or profiles.filter(
            sumup_connection_status=ConnectionStatus.CONNECTED, sumup_last_refresh_at__isnull=True
        ).exists()
    )


def mail_recipients(mail_dir: Path, outbox: list[EmailMessage]) -> Counter[str]:
    """Who got mail from the workers. If an earlier test started the session's in-process
    `project_worker`, it consumes from the same queue too, and its mail goes to locmem."""
    from_files = (
        address
        for message in sent_mail(mail_dir)
        for _, address in getaddresses(message.get_all("To", []))
    )
    return Counter(from_files) + Counter(address for message in outbox for address in message.to)


@pytest.mark.django_db(transaction=True)
def test_it_refreshes_every_due_artist_once_across_worker_processes_despite_faults(
    worker_processes, connect, sumup, settings, tmp_path, mailoutbox
):
    redis.client().flushdb()  # budget windows, halt flag and sweep lock of earlier tests
    settings.SUMUP_API_RATE_LIMIT = "100/s"
    sumup.configure(rotation="always", reject_reuse=True, latency_ms=100)
    live = [connect() for _ in range(LIVE)]
    revoked = [connect() for _ in range(REVOKED)]
    for artist in revoked:
        sumup.revoke_user(artist.sumup_email)
    for endpoint, status, options in FAULTS:
        sumup.add_fault(endpoint, status, **options)
    mail_dir = tmp_path / "mail"
    # Slots for every task at once: each artist's two tasks then race for its claim.
    workers = worker_processes(2, concurrency=SLOTS_PER_WORKER, mail_dir=mail_dir)

    enqueued = run_two_sweeps()
    for artist in live + revoked:  # and every task delivered twice, as a redelivery would
        token_refresh.refresh_artist.delay(artist.profile.pk)
    wait_until(workers, lambda: refreshes_settled(live + revoked), "refreshes")
    # The reconnect email goes out from a task of its own, queued once the grant expired.
    wait_until(workers, lambda: mail_recipients(mail_dir, mailoutbox).total() >= REVOKED, "emails")
    workers.stop()  # a warm shutdown: tasks under way finish first

    everyone = sorted(a.profile.pk for a in live + revoked)
    assert sorted(enqueued[0] + enqueued[1]) == everyone, "each artist queued exactly once"
    for artist in live:
        stored = ArtistProfile.objects.get(pk=artist.profile.pk)
        assert stored.sumup_connection_status == ConnectionStatus.CONNECTED
        assert successful_refreshes(sumup, artist.grant_id) == 1
        assert holds_live_grant(sumup, stored)
    for artist in revoked:
        stored = ArtistProfile.objects.get(pk=artist.profile.pk)
        assert stored.sumup_connection_status == ConnectionStatus.EXPIRED
        assert stored.sumup_refresh_token is None
    stats = sumup.stats()
    assert stats["faults_served"] == {"token": FAULT_CALLS}
    assert stats["token_calls"]["refresh_token"] == LIVE + REVOKED + FAULT_CALLS, (
        "one call per artist, plus one retry per fault"
    )
    assert max(stats["max_concurrent_refreshes_by_user"].values()) == 1
    assert mail_recipients(mail_dir, mailoutbox) == Counter(
        a.profile.user.email for a in revoked
    ), "one reconnect email per revoked grant, none to anyone else"


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_with_sigkill_is_gone_while_the_others_still_answer(worker_processes):
    workers = worker_processes(2, concurrency=1)

    workers.kill(0)

    assert not workers[0].is_alive() and workers[0].process.returncode == -9
    replies = app.control.ping(destination=[workers[1].hostname], timeout=2.0) or []
    assert [name for reply in replies for name in reply] == [workers[1].hostname]
