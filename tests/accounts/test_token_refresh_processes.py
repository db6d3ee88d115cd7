"""The scheduled token refresh with real worker processes: two `celery -A jobs worker`
subprocesses, two sweeps at once, every task delivered twice, a fake SumUp that rotates
refresh tokens strictly and rejects reuse, faults on its token endpoint, and a worker
killed with `kill -9` around SumUp's answer."""

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import time_machine
from django.core.mail import EmailMessage
from django.db import connection
from django.utils import timezone

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup import client, refresh, refresh_journal, sweep
from accounts.sumup.refresh import Outcome
from events import shared_redis
from fakes.sumup import FakeSumUp
from jobs import app, token_refresh

# pytest imports test modules by basename, with tests/ on sys.path (there is no
# tests/__init__.py); mypy names them from the project root.
if TYPE_CHECKING:
    from tests.support.polling import wait_for
    from tests.support.worker_processes import (
        WorkerProcesses,
        database_url,
        purge_queue,
        sent_mail,
    )
else:
    from support.polling import wait_for
    from support.worker_processes import WorkerProcesses, database_url, purge_queue, sent_mail

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

    def one_sweep() -> None:
        from django.db import connections

        start.wait()
        try:
            enqueued.append(sweep.run_sweep(exclusive=False).enqueued)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one_sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return enqueued


def wait_until(workers: WorkerProcesses, done: Callable[[], bool], what: str) -> None:
    wait_for(done, what, DEADLINE_S, explain=workers.log_tails, check=workers.check_alive)


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
    shared_redis.client().flushdb()  # budget windows, halt flag and sweep lock of earlier tests
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


# --- a worker killed around SumUp's answer ------------------------------------------------


def token_call_in_flight(sumup: FakeSumUp) -> bool:
    with sumup.state.lock:
        return sumup.state.counters.in_flight["token"] == 1


def rotated_at_sumup(sumup: FakeSumUp, refresh_token: str) -> bool:
    """SumUp has answered a refresh with this token: it is spent, a successor issued."""
    with sumup.state.lock:
        record = sumup.state.refresh_tokens.get(refresh_token)
        return record is not None and record.replaced_by is not None


def blocked_by(conn: psycopg.Connection[Any]) -> list[int]:
    """Backends waiting on a lock `conn` holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            [conn.info.backend_pid],
        )
        return [pid for (pid,) in cursor.fetchall()]


def logged_tokens(sumup: FakeSumUp, log_dir: Path) -> list[str]:
    logs = "\n".join(path.read_text(errors="replace") for path in log_dir.glob("*.log"))
    with sumup.state.lock:
        issued = [*sumup.state.access_tokens, *sumup.state.refresh_tokens]
    return [token[:6] + "..." for token in issued if token in logs]


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_between_sumups_answer_and_the_store_keeps_the_grant(
    worker_processes, connect, sumup, tmp_path
):
    """The worker gets SumUp's answer (a rotated refresh token), journals it, and dies
    while its UPDATE waits on a row lock the test holds; its database session dies with
    it, as when the machine under it goes. The redelivered task stores the journaled
    answer instead of calling SumUp with the spent token, and the grant lives on."""
    shared_redis.client().flushdb()
    sumup.configure(rotation="always", reject_reuse=True)
    artist = connect()
    spent = artist.profile.sumup_refresh_token or ""
    sumup.add_fault("token", None, delay_seconds=1.0)  # holds the call, then answers
    workers = worker_processes(1, concurrency=1)

    with psycopg.connect(database_url()) as blocker:
        assert sweep.run_sweep().enqueued == [artist.profile.pk]
        wait_for(lambda: token_call_in_flight(sumup), "the token call", DEADLINE_S, interval=0.05)
        blocker.execute(
            "SELECT 1 FROM accounts_artistprofile WHERE id = %s FOR UPDATE", [artist.profile.pk]
        )
        wait_for(
            lambda: bool(blocked_by(blocker)),
            "the store waiting on the row lock",
            DEADLINE_S,
            interval=0.05,
        )
        assert refresh_journal.pending(artist.profile.pk) is not None, "journaled first"
        workers.kill(0)
        with connection.cursor() as cursor:
            for pid in blocked_by(blocker):
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        blocker.rollback()

    stored = ArtistProfile.objects.get(pk=artist.profile.pk)
    assert stored.sumup_refresh_token == spent, "the store never reached the database"
    assert rotated_at_sumup(sumup, spent)
    leaked = logged_tokens(sumup, tmp_path / "workers")

    # Redis hands the unacknowledged task to another worker (after the visibility
    # timeout; sent again here at once).
    again = worker_processes(1, concurrency=1)
    token_refresh.refresh_artist.delay(artist.profile.pk)
    wait_until(
        again,
        lambda: ArtistProfile.objects.get(pk=artist.profile.pk).sumup_refresh_token != spent,
        "the journaled answer stored",
    )
    again.stop()

    stored = ArtistProfile.objects.get(pk=artist.profile.pk)
    assert stored.sumup_connection_status == ConnectionStatus.CONNECTED
    assert holds_live_grant(sumup, stored)
    assert sumup.state.refresh_calls(spent) == 1, "nobody called SumUp with the spent token"
    assert (stored.sumup_refresh_claim, stored.sumup_refresh_enqueued_at) == ("", None)
    assert refresh_journal.pending(artist.profile.pk) is None
    # The next refresh works with the stored, rotated token.
    assert refresh.refresh_profile(stored.pk, only_if_due=False).outcome is Outcome.REFRESHED
    assert successful_refreshes(sumup, artist.grant_id) == 2
    assert leaked + logged_tokens(sumup, tmp_path / "workers") == []


@pytest.mark.django_db(transaction=True)
def test_a_grant_lost_with_the_answer_in_flight_is_detected_and_the_artist_told(
    worker_processes, connect, sumup, monkeypatch, mailoutbox
):
    """The documented window: SumUp rotates the token and the worker dies before the
    answer reaches it. The first sweep after the dead worker's claim lapses finds the
    token refused, marks the connection expired and emails the artist once."""
    shared_redis.client().flushdb()
    sumup.configure(rotation="always", reject_reuse=True)
    artist = connect()
    spent = artist.profile.sumup_refresh_token or ""
    sumup.add_fault("token", None, delay_seconds=1.5)
    workers = worker_processes(1, concurrency=1)

    assert sweep.run_sweep().enqueued == [artist.profile.pk]
    wait_for(lambda: token_call_in_flight(sumup), "the token call", DEADLINE_S, interval=0.05)
    workers.kill(0)
    wait_for(lambda: rotated_at_sumup(sumup, spent), "SumUp's answer", DEADLINE_S, interval=0.05)
    assert ArtistProfile.objects.get(pk=artist.profile.pk).sumup_refresh_token == spent
    assert refresh_journal.pending(artist.profile.pk) is None

    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the next sweep's work inline
    lapsed = timezone.now() + timedelta(seconds=refresh.CLAIM_SECONDS + 1)
    with time_machine.travel(lapsed):
        # Not `exclusive`: the sweep lock lapses in Redis's time, which travels not.
        report = sweep.run_sweep(exclusive=False)

    assert report.enqueued == [artist.profile.pk]
    stored = ArtistProfile.objects.get(pk=artist.profile.pk)
    assert stored.sumup_connection_status == ConnectionStatus.EXPIRED
    assert stored.sumup_refresh_token is None
    assert sumup.state.refresh_calls(spent) == 2, "the second, refused, is the detection"
    assert [message.to for message in mailoutbox] == [[artist.profile.user.email]]
