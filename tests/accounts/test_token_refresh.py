"""Keeping SumUp connections alive: the refresh of one artist and the sweep, against the
fake SumUp (and a real worker where work is queued)."""

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest
import time_machine
from celery.signals import task_postrun
from django.core.management import call_command
from django.utils import timezone
from limits import RateLimitItem

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup import (
    client,
    queued_refresh,
    refresh,
    refresh_alerts,
    refresh_journal,
    refresh_outcomes,
    sweep,
)
from accounts.sumup.refresh import Outcome
from events import rate_limits, shared_redis
from fakes.sumup import FakeSumUp
from jobs import app, token_refresh

ConnectedArtist = Callable[..., ArtistProfile]


@pytest.fixture(autouse=True)
def clean_redis() -> None:
    """Budget windows, halt flags and sweep locks live in the test Redis database."""
    shared_redis.client().flushdb()


def reload(profile: ArtistProfile) -> ArtistProfile:
    return ArtistProfile.objects.get(pk=profile.pk)


def email_at_sumup(profile: ArtistProfile) -> str:
    """The fake SumUp user behind a `connected_artist` (its merchant is MT<n>)."""
    return f"merchant{int(str(profile.sumup_merchant_code)[2:])}@example.com"


def marked_queued() -> list[int]:
    """Artists the sweep or the dispatcher claimed for queued work."""
    queued = ArtistProfile.objects.filter(sumup_refresh_enqueued_at__isnull=False)
    return sorted(queued.values_list("pk", flat=True))


def refresh_calls(sumup: FakeSumUp, profile: ArtistProfile) -> int:
    return sumup.state.token_calls(email_at_sumup(profile), "refresh_token")


# --- one artist ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_due_token_is_refreshed_and_stored(connected_artist, sumup):
    profile = connected_artist()
    old_access = profile.sumup_access_token

    assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED

    stored = reload(profile)
    assert stored.sumup_access_token != old_access
    assert stored.sumup_expires_at
    assert stored.sumup_expires_at > timezone.now() + timedelta(minutes=55)
    assert stored.sumup_last_refresh_at is not None
    assert stored.sumup_token_version == profile.sumup_token_version + 1
    assert (stored.sumup_refresh_claim, stored.sumup_refresh_claimed_until) == ("", None)
    assert refresh_calls(sumup, profile) == 1


@pytest.mark.django_db
def test_a_token_that_is_not_due_is_left_alone(connected_artist, sumup):
    profile = connected_artist(expires_in=3599)
    assert refresh.refresh_profile(profile.pk).outcome is Outcome.NOT_DUE
    assert reload(profile).sumup_access_token == profile.sumup_access_token
    assert refresh_calls(sumup, profile) == 0


@pytest.mark.django_db
def test_a_token_expiring_within_a_minute_is_refreshed(connected_artist, sumup):
    profile = connected_artist(expires_in=30)
    assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED
    assert reload(profile).sumup_access_token != profile.sumup_access_token
    assert refresh_calls(sumup, profile) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("rotation", ["always", "never", "sumup"])
def test_rotation_stores_a_new_refresh_token_and_keeps_the_old_when_none_comes(
    connected_artist, sumup, rotation
):
    sumup.configure(rotation=rotation, reject_reuse=True)
    profile = connected_artist()
    first_refresh_token = profile.sumup_refresh_token

    for _ in range(3):
        now = timezone.now()
        ArtistProfile.objects.filter(pk=profile.pk).update(
            sumup_expires_at=now, sumup_refresh_due_at=now
        )
        assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED

    stored = reload(profile)
    if rotation == "always":
        assert stored.sumup_refresh_token != first_refresh_token
    else:
        assert stored.sumup_refresh_token == first_refresh_token
    assert stored.sumup_connection_status == ConnectionStatus.CONNECTED
    assert refresh_calls(sumup, profile) == 3


@pytest.mark.django_db
def test_an_old_refresh_token_is_renewed_inside_sumups_reissue_window(make_artist, sumup):
    """SumUp reissues a refresh token only in its last 30 days; the sweep uses it by then."""
    token = sumup.mint_grant(refresh_age_seconds=160 * 24 * 3600)
    profile = make_artist()
    profile.update_sumup_connection({**token, "expires_in": 3599})
    issued_at = timezone.now() - timedelta(days=160)
    # As the row would read had it been written then: due for renewal after 150 days.
    ArtistProfile.objects.filter(pk=profile.pk).update(
        sumup_refresh_token_issued_at=issued_at,
        sumup_refresh_due_at=issued_at + timedelta(days=150),
    )

    assert profile.pk in set(refresh.due_profiles().values_list("pk", flat=True))
    assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED
    stored = reload(profile)
    assert stored.sumup_refresh_token != token["refresh_token"]
    assert stored.sumup_refresh_token_issued_at
    assert stored.sumup_refresh_token_issued_at > timezone.now() - timedelta(minutes=1)
    assert profile.pk not in set(refresh.due_profiles().values_list("pk", flat=True))


@pytest.mark.django_db
def test_the_sweep_window_follows_the_clock(connected_artist, settings):
    settings.SUMUP_REFRESH_WINDOW = 600
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        profile = connected_artist(expires_in=3599)
        assert not refresh.due_profiles().filter(pk=profile.pk).exists()
        traveller.shift(timedelta(seconds=3599 - 601))
        assert not refresh.due_profiles().filter(pk=profile.pk).exists()
        traveller.shift(timedelta(seconds=2))
        assert refresh.due_profiles().filter(pk=profile.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_one_artist_make_one_token_call(connected_artist, sumup):
    sumup.configure(latency_ms=300, rotation="always", reject_reuse=True)
    profile = connected_artist()
    outcomes: list[Outcome] = []
    start = threading.Barrier(4)

    def work() -> None:
        from django.db import connections

        start.wait()
        try:
            outcomes.append(refresh.refresh_profile(profile.pk).outcome)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == sorted([Outcome.REFRESHED] + [Outcome.NOT_DUE] * 3)
    assert refresh_calls(sumup, profile) == 1
    assert reload(profile).sumup_connection_status == ConnectionStatus.CONNECTED


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_claim_lapsed_never_overwrites_a_newer_token(connected_artist, sumup):
    sumup.add_fault("token", None, delay_seconds=1.0)  # answers normally, a second late
    profile = connected_artist()
    result: list[refresh.Result] = []

    def slow_worker() -> None:
        from django.db import connections

        try:
            result.append(refresh.refresh_profile(profile.pk))
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_worker)
    thread.start()
    time.sleep(0.3)  # the slow worker holds the claim and waits on SumUp
    newer = reload(profile)
    newer.update_sumup_connection({"access_token": "written-by-someone-else", "expires_in": 3599})
    thread.join(timeout=10)

    assert result[0].outcome is Outcome.LOST_RACE
    assert reload(profile).sumup_access_token == "written-by-someone-else"


@pytest.mark.django_db
def test_a_revoked_grant_expires_the_connection_and_emails_once(
    connected_artist, sumup, mailoutbox, monkeypatch, django_capture_on_commit_callbacks
):
    profile = connected_artist()
    sumup.revoke_user(email_at_sumup(profile))
    # The email is a campaign send a worker makes after the commit: run it inline here.
    monkeypatch.setitem(app.conf, "task_always_eager", True)

    with django_capture_on_commit_callbacks(execute=True):
        result = refresh.refresh_profile(profile.pk)

    assert result.outcome is Outcome.EXPIRED
    stored = reload(profile)
    assert stored.sumup_connection_status == ConnectionStatus.EXPIRED
    assert (stored.sumup_access_token, stored.sumup_refresh_token) == (None, None)
    assert stored.sumup_merchant_code == profile.sumup_merchant_code, "staff still see which"
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [profile.user.email]
    assert "connect your SumUp account" in mailoutbox[0].subject

    with django_capture_on_commit_callbacks(execute=True):
        refresh_alerts.ask_to_reconnect(profile.pk)  # a later sweep or a redelivered task
    assert len(mailoutbox) == 1, "one email per lapse"


@pytest.mark.django_db
def test_invalid_grant_after_a_lost_race_is_not_a_revocation(connected_artist, sumup):
    profile = connected_artist()
    claimed = refresh._claim(profile.pk, only_if_due=True)
    assert claimed is not None
    claim, snapshot = claimed
    ArtistProfile.objects.filter(pk=profile.pk).update(
        sumup_token_version=snapshot.sumup_token_version + 1
    )  # another worker stored a newer token meanwhile

    error = client.SumUpError("invalid_grant", permanent=True)
    assert refresh._failed(snapshot, claim, error).outcome is Outcome.LOST_RACE
    assert reload(profile).sumup_connection_status == ConnectionStatus.CONNECTED


@pytest.mark.django_db
def test_invalid_client_halts_refresh_alerts_staff_once_and_touches_no_status(
    connected_artist, sumup, settings, mailoutbox
):
    settings.ADMINS = ["ops@example.com"]
    first, second = connected_artist(), connected_artist()
    sumup.configure(invalid_client=True)

    assert refresh.refresh_profile(first.pk).outcome is Outcome.HALTED
    assert refresh.refresh_profile(second.pk).outcome is Outcome.HALTED

    assert refresh_alerts.is_halted()
    assert [m.to for m in mailoutbox] == [["ops@example.com"]]
    assert "halted" in mailoutbox[0].subject
    for profile in (first, second):
        assert reload(profile).sumup_connection_status == ConnectionStatus.CONNECTED


@pytest.mark.django_db
def test_while_halted_a_sweep_only_probes_and_a_successful_probe_resumes(
    connected_artist, sumup, monkeypatch, django_capture_on_commit_callbacks
):
    queued: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = []

    def ran(sender: Any, args: Any, kwargs: Any, retval: Any, **rest: Any) -> None:
        if sender.name == token_refresh.refresh_artist.name:
            queued.append((tuple(args), kwargs, retval))

    connected_artist(), connected_artist()
    refresh_alerts.halt("invalid_client")
    # What the sweep queues runs here, inline, and is recorded as it runs.
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    task_postrun.connect(ran, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            report = sweep.run_sweep()
    finally:
        task_postrun.disconnect(ran)

    assert report.enqueued == [] and "halted" in report.skipped
    assert len(queued) == 1 and queued[0][1] == {"probe": True}
    probe_id, probe_outcome = queued[0][0][0], queued[0][2]
    assert probe_id == report.probe
    assert probe_outcome == "refreshed"
    assert not refresh_alerts.is_halted()


@pytest.mark.django_db
def test_429_asks_to_retry_after_what_sumup_says(connected_artist, sumup):
    profile = connected_artist()
    sumup.add_fault("token", 429, retry_after=7)
    result = refresh.refresh_profile(profile.pk)
    assert (result.outcome, result.retry_after) == (Outcome.RETRY, 7.0)
    stored = reload(profile)
    assert stored.sumup_connection_status == ConnectionStatus.CONNECTED
    assert stored.sumup_refresh_claim == ""


@pytest.mark.django_db
@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_and_counted(connected_artist, sumup, status):
    profile = connected_artist()
    sumup.add_fault("token", status)
    result = refresh.refresh_profile(profile.pk)
    assert result.outcome is Outcome.RETRY and result.error == f"http_{status}"
    stored = reload(profile)
    assert stored.sumup_refresh_failures == 1
    assert f"http_{status}" in stored.sumup_last_error
    assert refresh.refresh_profile(profile.pk).outcome is Outcome.REFRESHED
    assert reload(profile).sumup_refresh_failures == 0


@pytest.mark.django_db
def test_a_timeout_is_transient(connected_artist, sumup, monkeypatch):
    monkeypatch.setattr(client, "TIMEOUT", (1.0, 0.2))
    profile = connected_artist()
    sumup.add_fault("token", None, delay_seconds=0.6)
    result = refresh.refresh_profile(profile.pk)
    assert (result.outcome, result.error) == (Outcome.RETRY, "timeout")


@pytest.mark.django_db
def test_over_the_api_budget_the_claim_is_given_back_without_a_call(
    connected_artist, sumup, settings
):
    settings.SUMUP_API_RATE_LIMIT = "2/minute"
    artists = [connected_artist() for _ in range(3)]
    outcomes = [refresh.refresh_profile(a.pk) for a in artists]
    assert [o.outcome for o in outcomes] == [
        Outcome.REFRESHED,
        Outcome.REFRESHED,
        Outcome.OVER_BUDGET,
    ]
    assert outcomes[2].retry_after
    assert 0 < outcomes[2].retry_after <= 60 + refresh.OVER_BUDGET_SPREAD
    assert refresh_calls(sumup, artists[2]) == 0
    assert reload(artists[2]).sumup_refresh_claim == ""


@pytest.mark.django_db
def test_queued_refreshes_leave_on_demand_ones_a_share_of_the_budget(
    connected_artist, sumup, settings
):
    settings.SUMUP_API_RATE_LIMIT = "20/minute"  # the bulk share: 19 of them
    queued = [connected_artist() for _ in range(20)]
    outcomes = [refresh.refresh_profile(a.pk, bulk=True).outcome for a in queued]
    assert outcomes == [Outcome.REFRESHED] * 19 + [Outcome.OVER_BUDGET]

    on_demand = connected_artist()
    assert refresh.refresh_profile(on_demand.pk).outcome is Outcome.REFRESHED
    assert refresh.refresh_profile(connected_artist().pk).outcome is Outcome.OVER_BUDGET


@pytest.mark.django_db
def test_a_queued_refresh_a_moment_early_for_the_budget_waits_for_its_slot(
    connected_artist, sumup, settings
):
    settings.SUMUP_API_RATE_LIMIT = "2/s"  # the bulk share: 2 of them
    first, second, third = (connected_artist() for _ in range(3))
    assert refresh.refresh_profile(first.pk, bulk=True).outcome is Outcome.REFRESHED
    assert refresh.refresh_profile(second.pk, bulk=True).outcome is Outcome.REFRESHED
    time.sleep(1 - refresh.BUDGET_WAIT_AT_MOST / 2)  # the first slot frees in ~0.1 s

    began = time.monotonic()
    assert refresh.refresh_profile(third.pk, bulk=True).outcome is Outcome.REFRESHED, "not refused"
    assert time.monotonic() - began >= 0.05, "it waited for the slot to free"
    assert refresh_calls(sumup, third) == 1


# --- the sweep -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_second_beat_in_the_same_interval_enqueues_nothing(connected_artist):
    due = [connected_artist() for _ in range(3)]
    connected_artist(expires_in=3599)

    first = sweep.run_sweep()
    second = sweep.run_sweep()
    manual = sweep.run_sweep(exclusive=False)

    assert sorted(first.enqueued) == sorted(p.pk for p in due)
    assert marked_queued() == sorted(p.pk for p in due)
    assert second.skipped and not second.enqueued
    assert manual.enqueued == [], "already queued artists are not queued again"


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_refreshes_every_due_artist_with_one_call_each(
    project_worker, connected_artist, sumup, settings
):
    settings.SUMUP_API_RATE_LIMIT = "100/s"
    due = [connected_artist() for _ in range(12)]
    fresh = connected_artist(expires_in=3599)

    report = sweep.run_sweep()
    sweep.run_sweep(exclusive=False)  # a second beat by mistake
    assert sorted(report.enqueued) == sorted(p.pk for p in due)

    deadline = time.monotonic() + 30
    while ArtistProfile.objects.filter(sumup_refresh_enqueued_at__isnull=False).exists():
        assert time.monotonic() < deadline, "the worker did not finish the refreshes"
        time.sleep(0.1)
    for profile in due:
        assert refresh_calls(sumup, profile) == 1
        assert reload(profile).sumup_last_refresh_at is not None
    assert refresh_calls(sumup, fresh) == 0


@pytest.mark.django_db(transaction=True)
def test_a_sweeps_refreshes_reach_sumup_evenly_spaced_not_in_a_burst(
    project_worker, connected_artist, sumup, settings
):
    settings.SUMUP_API_RATE_LIMIT = "10/s"  # the cap alone would let all 8 go at once
    due = [connected_artist() for _ in range(8)]

    sweep.run_sweep(exclusive=False)

    deadline = time.monotonic() + 30
    while ArtistProfile.objects.filter(sumup_refresh_enqueued_at__isnull=False).exists():
        assert time.monotonic() < deadline, "the worker did not finish the refreshes"
        time.sleep(0.1)
    assert [refresh_calls(sumup, profile) for profile in due] == [1] * 8
    done = sorted(filter(None, (reload(profile).sumup_last_refresh_at for profile in due)))
    assert len(done) == 8
    spread = (done[-1] - done[0]).total_seconds()
    assert spread >= 7 * 0.1 - 0.05, f"8 refreshes went out within {spread:.3f} s"


def _fill_the_share(budget: RateLimitItem) -> float:
    filled_at = time.time()
    assert [rate_limits.acquire(refresh.API_RULE, budget) for _ in range(2)] == [0.0, 0.0]
    return filled_at


def _wait_for_refresh(profile: ArtistProfile) -> float:
    deadline = time.monotonic() + 20
    while reload(profile).sumup_last_refresh_at is None:
        assert time.monotonic() < deadline, "the refused refresh never came back"
        time.sleep(0.05)
    refreshed_at = reload(profile).sumup_last_refresh_at
    assert refreshed_at is not None
    return refreshed_at.timestamp()


def _over_budget_outcomes() -> int:
    outcomes = cast(
        dict[bytes, bytes], shared_redis.client().hgetall(refresh_outcomes.OUTCOMES_KEY)
    )
    return int(outcomes.get(b"over_budget", 0))


@pytest.mark.django_db(transaction=True)
def test_a_late_booked_refresh_refused_by_the_share_comes_back_as_the_window_frees(
    project_worker, connected_artist, sumup, settings
):
    settings.SUMUP_API_RATE_LIMIT = "2/s"  # bulk share 2, paced one a second
    budget = rate_limits.parse_rate("2/s")
    profile = connected_artist()
    filled_at = _fill_the_share(budget)

    token_refresh.refresh_artist.delay(profile.pk, 0, False, time.time())  # its slot: now

    assert _wait_for_refresh(profile) >= filled_at + 1
    assert refresh_calls(sumup, profile) == 1
    assert _over_budget_outcomes() == 1
    # It booked no second slot: the pacing has not moved on.
    assert rate_limits.reserve(refresh.API_RULE, budget, within=0).held


@pytest.mark.django_db(transaction=True)
def test_a_refresh_without_a_slot_refused_by_the_share_books_one(
    project_worker, connected_artist, sumup, settings
):
    settings.SUMUP_API_RATE_LIMIT = "2/2s"  # bulk share 2 per 2 s, paced one per 2 s
    budget = rate_limits.parse_rate("2/2s")
    profile = connected_artist()
    filled_at = _fill_the_share(budget)

    token_refresh.refresh_artist.delay(profile.pk)  # a retry or a probe: no slot

    assert _wait_for_refresh(profile) >= filled_at + 2
    assert refresh_calls(sumup, profile) == 1
    # Refused, it booked the next slot, DELIVERY_LEAD away; there the window was still
    # full, so it came back once more, as the window freed.
    assert _over_budget_outcomes() == 2


@pytest.mark.django_db(transaction=True)
def test_transient_failures_outlasting_every_retry_end_in_error_for_staff(
    project_worker, connected_artist, sumup, settings, monkeypatch
):
    settings.SUMUP_REFRESH_MAX_ATTEMPTS = 3
    monkeypatch.setattr(queued_refresh, "BACKOFF_BASE", 0.05)
    profile = connected_artist()
    sumup.add_fault("token", 503, count=10)

    token_refresh.refresh_artist.delay(profile.pk)

    deadline = time.monotonic() + 20
    while reload(profile).sumup_connection_status != ConnectionStatus.ERROR:
        assert time.monotonic() < deadline, "the task never gave up"
        time.sleep(0.1)
    stored = reload(profile)
    assert stored.sumup_refresh_failures == 3
    assert refresh_calls(sumup, profile) == 3
    assert stored.sumup_refresh_enqueued_at is None
    next_sweep = timezone.now() + timedelta(seconds=settings.SUMUP_REFRESH_SWEEP_INTERVAL + 1)
    assert profile.pk not in set(refresh.due_profiles().values_list("pk", flat=True)), (
        "not tried again at once"
    )
    assert profile.pk in set(refresh.due_profiles(next_sweep).values_list("pk", flat=True)), (
        "the next sweep tries again"
    )


def test_the_sweep_is_on_beats_schedule():
    from jobs import app

    entry = app.conf.beat_schedule["sumup-token-refresh-sweep"]
    assert entry["task"] == "jobs.token_refresh.sweep"
    assert entry["schedule"] <= 300


# --- a rotated token is never dropped --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_answer_whose_claim_lapsed_is_stored_when_it_is_the_newest(connected_artist, sumup):
    sumup.configure(rotation="always", reject_reuse=True)
    sumup.add_fault("token", None, delay_seconds=1.0)  # answers normally, a second late
    profile = connected_artist()
    result: list[refresh.Result] = []

    def slow_worker() -> None:
        from django.db import connections

        try:
            result.append(refresh.refresh_profile(profile.pk))
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_worker)
    thread.start()
    time.sleep(0.3)  # the slow worker waits on SumUp; its claim lapses, another takes it
    ArtistProfile.objects.filter(pk=profile.pk).update(
        sumup_refresh_claim="someone-else",
        sumup_refresh_claimed_until=timezone.now() + timedelta(seconds=60),
    )
    thread.join(timeout=10)

    assert result[0].outcome is Outcome.REFRESHED
    stored = reload(profile)
    assert stored.sumup_refresh_token != profile.sumup_refresh_token
    assert sumup.state.refresh_tokens[stored.sumup_refresh_token or ""].replaced_by is None
    assert stored.sumup_refresh_claim == "someone-else", "the later claim stays its holder's"


def journal_answer_as_a_dead_worker(profile: ArtistProfile, claim: str) -> dict[str, Any]:
    """What a worker killed between SumUp's answer and its store leaves: its claim on the
    row, the refresh token spent at SumUp, and the answer in the journal."""
    ArtistProfile.objects.filter(pk=profile.pk).update(
        sumup_refresh_claim=claim,
        sumup_refresh_claimed_until=timezone.now() + timedelta(seconds=refresh.CLAIM_SECONDS),
    )
    answer = client.refresh(refresh_token=profile.sumup_refresh_token or "")
    entry = refresh_journal.record(
        profile.pk,
        version=profile.sumup_token_version,
        claim=claim,
        answer=answer,
        received_at=time.time(),
    )
    assert entry is not None
    return answer


def settled_journal() -> time_machine.travel:
    """Later by `JOURNAL_SETTLE_SECONDS`: long enough for a live worker to have stored what
    it journaled, so an answer still in the journal is a dead worker's."""
    return time_machine.travel(time.time() + refresh.JOURNAL_SETTLE_SECONDS + 1, tick=True)


@pytest.mark.django_db
def test_a_journaled_answer_is_stored_by_the_next_claim_instead_of_a_call(connected_artist, sumup):
    sumup.configure(rotation="always", reject_reuse=True)
    profile = connected_artist()
    answer = journal_answer_as_a_dead_worker(profile, "dead-worker")

    # The task redelivered: no call with the spent token, the answer stored instead.
    assert refresh.refresh_profile(profile.pk).outcome is Outcome.NOT_DUE
    stored = reload(profile)
    assert stored.sumup_refresh_token == answer["refresh_token"]
    assert stored.sumup_access_token == answer["access_token"]
    assert (stored.sumup_refresh_claim, stored.sumup_refresh_claimed_until) == ("", None)
    assert refresh_journal.pending(profile.pk) is None
    assert refresh_calls(sumup, profile) == 1
    assert refresh.refresh_profile(profile.pk, only_if_due=False).outcome is Outcome.REFRESHED


@pytest.mark.django_db
def test_a_refused_token_applies_the_journal_before_calling_the_grant_dead(connected_artist, sumup):
    sumup.configure(rotation="always", reject_reuse=True)
    profile = connected_artist()
    claimed = refresh._claim(profile.pk, only_if_due=True)
    assert claimed is not None
    claim, snapshot = claimed
    answer = journal_answer_as_a_dead_worker(profile, "lapsed-worker")  # spends the token

    error = client.SumUpError("invalid_grant", permanent=True)
    assert refresh._failed(snapshot, claim, error).outcome is Outcome.LOST_RACE
    stored = reload(profile)
    assert stored.sumup_connection_status == ConnectionStatus.CONNECTED
    assert stored.sumup_refresh_token == answer["refresh_token"]


@pytest.mark.django_db
def test_a_journaled_answer_for_a_row_written_since_is_dropped(connected_artist, sumup):
    profile = connected_artist()
    journal_answer_as_a_dead_worker(profile, "dead-worker")
    reload(profile).update_sumup_connection({"access_token": "reconnected", "expires_in": 3599})

    with settled_journal():
        assert sweep.run_sweep().from_journal == 0
    assert reload(profile).sumup_access_token == "reconnected"
    assert refresh_journal.pending(profile.pk) is None


@pytest.mark.django_db
def test_the_sweep_stores_journaled_answers_first(connected_artist, sumup):
    profile = connected_artist()
    answer = journal_answer_as_a_dead_worker(profile, "dead-worker")

    with settled_journal():
        report = sweep.run_sweep()

    assert report.from_journal == 1
    assert report.enqueued == [], "refreshed by the journal: not due any more"
    assert reload(profile).sumup_access_token == answer["access_token"]


@pytest.mark.django_db
def test_the_sweep_leaves_an_answer_just_journaled_to_the_worker_storing_it(
    connected_artist, sumup
):
    profile = connected_artist()
    answer = journal_answer_as_a_dead_worker(profile, "live-worker")

    assert sweep.run_sweep().from_journal == 0, "its worker stores it in a moment"
    assert reload(profile).sumup_access_token != answer["access_token"]
    assert refresh_journal.pending(profile.pk) is not None

    with settled_journal():
        later = sweep.run_sweep(exclusive=False)  # the next interval's sweep
    assert later.from_journal == 1, "not stored by now: its worker died"
    assert reload(profile).sumup_access_token == answer["access_token"]


# --- recovery in minutes ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_backoff_longer_than_a_countdown_is_queued_by_the_dispatcher_when_it_ends(
    project_worker, connected_artist, sumup
):
    profile = connected_artist()
    # Longer than a countdown may hold a worker: a time in the row (refresh.defer).
    sumup.add_fault("token", 429, retry_after=queued_refresh.MAX_COUNTDOWN + 1)
    started = time.time()

    sweep.run_sweep()

    deadline = time.monotonic() + 30
    while (refreshed_at := reload(profile).sumup_last_refresh_at) is None:
        assert time.monotonic() < deadline, "the backed-off refresh waited for another sweep"
        time.sleep(0.2)
    assert refreshed_at.timestamp() >= started + queued_refresh.MAX_COUNTDOWN + 1
    assert refresh_calls(sumup, profile) == 2, "the refused call and the one after the wait"
    assert not shared_redis.client().exists(sweep.DISPATCHER_KEY), "the chain ended"


@pytest.mark.django_db(transaction=True)
def test_a_sweep_hands_out_seconds_of_work_and_the_dispatcher_the_rest(
    project_worker, connected_artist, sumup, settings
):
    settings.SUMUP_API_RATE_LIMIT = "5/s"  # paced every 0.25 s: 30 artists take 7.5 s
    due = [connected_artist() for _ in range(30)]
    per_lookahead = sweep.LOOKAHEAD / refresh.paced_interval() + 1

    report = sweep.run_sweep()

    assert 0 < len(report.enqueued) <= per_lookahead
    assert report.more_due
    deadline = time.monotonic() + 40
    while ArtistProfile.objects.filter(sumup_last_refresh_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the dispatcher did not hand out the rest"
        time.sleep(0.2)
    assert [refresh_calls(sumup, profile) for profile in due] == [1] * 30
    assert not shared_redis.client().exists(sweep.DISPATCHER_KEY), "the chain ended"


@pytest.mark.django_db(transaction=True)
def test_an_artist_falling_due_within_the_lookahead_is_queued_then_not_at_the_next_sweep(
    project_worker, connected_artist, sumup, settings
):
    settings.SUMUP_REFRESH_SWEEP_INTERVAL = 600  # the next sweep is far off
    due_now, due_soon = connected_artist(), connected_artist()
    falls_due = timezone.now() + timedelta(seconds=sweep.LOOKAHEAD / 2)
    ArtistProfile.objects.filter(pk=due_soon.pk).update(sumup_refresh_due_at=falls_due)

    report = sweep.run_sweep()

    assert report.enqueued == [due_now.pk]
    assert report.more_due, "the dispatcher comes back for the one falling due"
    deadline = time.monotonic() + 30
    while (refreshed_at := reload(due_soon).sumup_last_refresh_at) is None:
        assert time.monotonic() < deadline, "left to the next sweep"
        time.sleep(0.2)
    assert refreshed_at >= falls_due, "not before its time"
    assert refresh_calls(sumup, due_soon) == 1
    deadline = time.monotonic() + 10
    while shared_redis.client().exists(sweep.DISPATCHER_KEY):
        assert time.monotonic() < deadline, "the chain goes on with nothing to come"
        time.sleep(0.2)


@pytest.mark.django_db(transaction=True)
def test_refresh_now_waits_for_every_due_artist_not_only_the_first_seconds_of_work(
    project_worker, connected_artist, sumup, settings, capsys
):
    settings.SUMUP_API_RATE_LIMIT = "5/s"  # the sweep queues ~5 s of the 30: the rest later
    due = [connected_artist() for _ in range(30)]

    call_command("refresh_sumup_tokens", "--wait", "--timeout", "60")

    out = capsys.readouterr().out
    assert "the dispatcher queues the rest" in out
    assert "refreshed=30 expired=0 errors=0" in out
    assert [refresh_calls(sumup, profile) for profile in due] == [1] * 30


@pytest.mark.django_db
def test_a_refresh_whose_queue_entry_was_lost_is_queued_again_by_the_next_sweep(
    connected_artist, settings
):
    settings.SUMUP_REFRESH_SWEEP_INTERVAL = 120
    due = sorted(connected_artist().pk for _ in range(3))
    now = timezone.now()
    with time_machine.travel(now, tick=False) as traveller:
        assert sorted(sweep.run_sweep(exclusive=False).enqueued) == due
        app.control.purge()  # Redis lost the queue
        traveller.shift(timedelta(seconds=59))
        assert sweep.run_sweep(exclusive=False).enqueued == [], "not yet stale"
        traveller.shift(timedelta(seconds=2))
        assert sorted(sweep.run_sweep(exclusive=False).enqueued) == due
    app.control.purge()


@pytest.mark.django_db
def test_a_long_backoff_is_a_time_in_the_row_not_a_countdown(connected_artist, sumup):
    profile = connected_artist()
    sumup.add_fault("token", 429, retry_after=30)
    now = timezone.now()
    with time_machine.travel(now, tick=False) as traveller:
        assert token_refresh.refresh_artist.run(profile.pk) == "retry"
        stored = reload(profile)
        assert stored.sumup_refresh_claimed_until == now + timedelta(seconds=30)
        assert (stored.sumup_refresh_claim, stored.sumup_refresh_enqueued_at) == ("", None)
        lease = cast(bytes | None, shared_redis.client().get(sweep.DISPATCHER_KEY))
        assert lease, "a dispatcher was started to queue it when its time comes"
        assert token_refresh.dispatch.run(lease.decode()) == 0, "not before its time"
        traveller.shift(timedelta(seconds=31))
        assert token_refresh.dispatch.run(lease.decode()) == 1
    app.control.purge()
