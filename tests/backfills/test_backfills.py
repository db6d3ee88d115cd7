"""The backfill engine on the real SumUp status backfill, in PostgreSQL."""

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import OperationalError, close_old_connections, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.models import ArtistProfile
from backfills import control, engine, registry
from backfills.models import BackfillBatch, BackfillEvent, BackfillRun, RunStatus
from jobs.backfills import OUTAGE_COUNTDOWN_CAP, outage_countdown, recover

if TYPE_CHECKING:
    from tests.support.backfills import assert_ledger_covers_each_row_once, nulls
else:
    from support.backfills import assert_ledger_covers_each_row_once, nulls

NAME = "sumup_connection_status"


def start_inline(batch_size: int = 100) -> BackfillRun:
    return control.start(NAME, batch_size=batch_size, enqueue=False)


def running(run: BackfillRun) -> BackfillRun:
    BackfillRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, generation=1)
    run.refresh_from_db()
    return run


# --- the batch ------------------------------------------------------------------------


def test_batch_size_steers_toward_the_target_within_bounds():
    assert engine.next_batch_size(1000, elapsed_ms=50, target_ms=100) == 1500
    assert engine.next_batch_size(1000, elapsed_ms=400, target_ms=100) == 500
    assert engine.next_batch_size(1000, elapsed_ms=125, target_ms=100) == 800
    assert engine.next_batch_size(engine.MAX_BATCH, 1, 100) == engine.MAX_BATCH
    assert engine.next_batch_size(engine.MIN_BATCH, 10_000, 100) == engine.MIN_BATCH


@pytest.mark.django_db
def test_each_batch_advances_the_cursor_with_its_writes_and_the_run_ends_verified(
    legacy_artists,
):
    ids = legacy_artists(250)
    run = running(start_inline(batch_size=100))
    run.target_batch_ms = 10**6  # keep the size fixed for the test
    run.save()

    steps = []
    while (step := engine.run_one_batch(run.pk, 1)).step is engine.Step.CONTINUE:
        steps.append(step)
    run.refresh_from_db()

    assert step.step is engine.Step.DONE
    assert run.status == RunStatus.SUCCEEDED and run.finished_at
    assert nulls() == 0
    assert run.rows_total == 250 and run.cursor is not None and run.cursor >= ids[-151]
    assert_ledger_covers_each_row_once(run, 250)
    assert list(run.events.values_list("action", flat=True)) == ["succeeded", "record"]


@pytest.mark.django_db
def test_a_stale_generation_or_a_paused_run_does_nothing(legacy_artists):
    legacy_artists(50)
    run = running(start_inline())
    assert engine.run_one_batch(run.pk, generation=0).step is engine.Step.STOP
    control.pause(run.pk)
    assert engine.run_one_batch(run.pk, generation=1).step is engine.Step.STOP
    assert nulls() == 50
    assert not BackfillBatch.objects.exists()


@pytest.mark.django_db
def test_a_cancel_is_finished_by_the_next_batch(legacy_artists):
    legacy_artists(50)
    run = running(start_inline())
    control.cancel(run.pk)
    assert BackfillRun.objects.get(pk=run.pk).status == RunStatus.CANCELLING
    assert engine.run_one_batch(run.pk, 1).step is engine.Step.DONE
    assert BackfillRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert nulls() == 50


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_waits_on_a_lock_times_out_halves_and_is_retried(legacy_artists, monkeypatch):
    monkeypatch.setattr(engine, "LOCK_TIMEOUT_MS", 300)
    ids = legacy_artists(40)
    run = running(start_inline(batch_size=40))
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"]
    ) as other:
        other.execute("SELECT 1 FROM accounts_artistprofile WHERE id = %s FOR UPDATE", [ids[5]])
        result = engine.run_one_batch(run.pk, 1)
        other.rollback()

    assert result.step is engine.Step.RETRY and "lock timeout" in result.error
    run.refresh_from_db()
    assert (run.batch_size, run.failed_attempts, run.rows_done) == (engine.MIN_BATCH, 1, 0)
    assert nulls() == 40, "the timed-out batch was rolled back whole"
    while engine.run_one_batch(run.pk, 1).step is engine.Step.CONTINUE:
        pass
    assert nulls() == 0


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_connection_is_cut_is_not_counted_and_the_next_one_resumes(
    legacy_artists,
):
    legacy_artists(300)
    run = running(start_inline(batch_size=100))
    BackfillRun.objects.filter(pk=run.pk).update(target_batch_ms=10**6)
    assert engine.run_one_batch(run.pk, 1).step is engine.Step.CONTINUE
    size = BackfillRun.objects.get(pk=run.pk).batch_size
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"]
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [backend])

    result = engine.run_one_batch(run.pk, 1)

    assert result.step is engine.Step.UNREACHABLE
    assert result.error == "no database connection: OperationalError"
    close_old_connections()  # what every task does when it starts (jobs.celery)
    run.refresh_from_db()
    assert (run.rows_done, run.batch_size, run.failed_attempts) == (100, size, 0), "not counted"
    assert nulls() == 200
    while engine.run_one_batch(run.pk, 1).step is engine.Step.CONTINUE:
        pass
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and nulls() == 0
    assert_ledger_covers_each_row_once(run, 300)


def test_a_slice_waits_seconds_for_the_database_doubling_up_to_a_cap():
    waits = [outage_countdown(n) for n in range(1, 8)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert (
        max(waits)
        == OUTAGE_COUNTDOWN_CAP
        < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    )


@pytest.mark.django_db
def test_a_failing_batch_fails_the_run_which_resumes_from_its_cursor(legacy_artists, monkeypatch):
    legacy_artists(300)
    run = running(start_inline(batch_size=100))
    run.target_batch_ms = 10**6
    run.save()
    assert engine.run_one_batch(run.pk, 1).step is engine.Step.CONTINUE
    backfill = registry.get(NAME)
    broken = registry.Backfill(
        name=NAME,
        description="",
        model=backfill.model,
        pending=backfill.pending,
        apply=lambda rows: (_ for _ in ()).throw(OperationalError("disk on fire")),
    )
    monkeypatch.setitem(registry._REGISTRY, NAME, broken)

    results = [engine.run_one_batch(run.pk, 1) for _ in range(engine.MAX_ATTEMPTS)]

    assert [r.step for r in results] == [engine.Step.RETRY] * 2 + [engine.Step.DONE]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "disk on fire" in run.last_error
    cursor = run.cursor
    monkeypatch.setitem(registry._REGISTRY, NAME, backfill)
    control.retry(run.pk)
    run.refresh_from_db()
    assert (run.status, run.generation, run.cursor) == (RunStatus.RUNNING, 2, cursor)
    while engine.run_one_batch(run.pk, 2).step is engine.Step.CONTINUE:
        pass
    assert nulls() == 0
    assert_ledger_covers_each_row_once(BackfillRun.objects.get(pk=run.pk), 300)


@pytest.mark.django_db
def test_a_dry_run_counts_and_times_a_sample_batch_and_changes_nothing(legacy_artists):
    legacy_artists(30)
    to_do, rows, ms = engine.dry_run(registry.get(NAME), batch_size=20)
    assert (to_do, rows) == (30, 20) and ms > 0
    assert nulls() == 30


# --- in a data migration --------------------------------------------------------------


def seed_artists_at_0003(count: int) -> None:
    """Artists as accounts.0003 leaves them: the SumUp columns there, every status NULL."""
    MigrationExecutor(connection).migrate([("accounts", "0003_add_sumup_oauth_fields")])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO accounts_user (password, username, first_name, last_name, email, "
            "is_superuser, is_active, is_staff, date_joined, user_type, phone, email_verified) "
            "SELECT '!', 'legacy' || n, '', '', 'legacy' || n || '@example.com', false, true, "
            "false, now(), 'artist', '', true FROM generate_series(1, %s) AS n",
            [count],
        )
        cursor.execute(
            "INSERT INTO accounts_artistprofile (user_id, display_name, bio, business_name, "
            "is_approved, sumup_access_token, created_at, updated_at) SELECT id, username, '', "
            "'', true, 'stale', now(), now() FROM accounts_user"
        )


@pytest.mark.django_db(transaction=True)
def test_below_the_inline_limit_0004_runs_the_engines_batches_itself_and_records_no_run(
    settings,
):
    seed_artists_at_0003(300)
    settings.BACKFILL_BATCH_SIZE = 100
    statements: list[str] = []

    def note(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(note):
            call_command("migrate", "accounts", "0004_migrate_existing_artists_to_sumup")

        assert nulls() == 0
        assert not ArtistProfile.objects.filter(sumup_access_token__isnull=False).exists()
        # Three full key ranges and the one that finds the end, each with the engine's
        # timeouts: the batches a worker runs, without a run to record them on.
        updates = [sql for sql in statements if sql.startswith('UPDATE "accounts_artistprofile')]
        assert len(updates) == 4
        assert sum(sql.startswith("SET LOCAL lock_timeout") for sql in statements) == 4
        assert not BackfillRun.objects.exists() and not BackfillEvent.objects.exists()
    finally:
        call_command("migrate")


@pytest.mark.django_db(transaction=True)
def test_an_inline_backfill_retries_a_batch_that_waits_on_a_lock_then_gives_up(
    legacy_artists, monkeypatch, caplog
):
    monkeypatch.setattr(engine, "LOCK_TIMEOUT_MS", 300)
    ids = legacy_artists(40)
    backfill = registry.get(NAME)
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"]
    ) as other:
        other.execute("SELECT 1 FROM accounts_artistprofile WHERE id = %s FOR UPDATE", [ids[5]])
        with pytest.raises(OperationalError, match="lock timeout"):
            engine.run_inline(backfill, backfill.all_rows(), batch_size=40)
        other.rollback()

    retries = [r for r in caplog.records if "inline batch failed, will retry" in r.getMessage()]
    assert len(retries) == engine.MAX_ATTEMPTS - 1
    assert nulls() == 40, "every attempt was rolled back whole"
    assert engine.run_inline(backfill, backfill.all_rows(), batch_size=40) == 40
    assert nulls() == 0
    assert not BackfillRun.objects.exists()


# --- control and audit ----------------------------------------------------------------


@pytest.mark.django_db
def test_counting_the_rows_to_do_keeps_to_one_core(legacy_artists):
    legacy_artists(30)
    parallel_workers_seen: list[str] = []

    def note_setting(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SELECT COUNT("):
            with context["connection"].connection.cursor() as raw:
                raw.execute("SHOW max_parallel_workers_per_gather")
                parallel_workers_seen.append(raw.fetchone()[0])
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(note_setting):
        assert registry.get(NAME).count_to_do() == 30
        with connection.cursor() as cursor:
            cursor.execute("SHOW max_parallel_workers_per_gather")
            after = cursor.fetchone()[0]

    assert parallel_workers_seen == ["0"]
    assert after != "0", "the caller's transaction gets its own setting back"


@pytest.mark.django_db
def test_one_active_run_per_backfill(legacy_artists, django_user_model):
    legacy_artists(5)
    staff = django_user_model.objects.create_user("ops", "ops@example.com", "pw-ops-123")
    run = control.start(NAME, user=staff, enqueue=False)
    with pytest.raises(control.ControlError, match="already has an active run"):
        control.start(NAME, enqueue=False)
    control.cancel(run.pk, user=staff)
    second = control.start(NAME, enqueue=False)
    assert second.pk != run.pk
    events = list(run.events.order_by("at").values_list("action", "user__username"))
    assert events == [("record", "ops"), ("cancel", "ops")]


@pytest.mark.django_db
def test_transitions_that_do_not_apply_are_refused(legacy_artists):
    legacy_artists(5)
    run = start_inline()
    with pytest.raises(control.ControlError, match="cannot resume"):
        control.resume(run.pk)
    with pytest.raises(control.ControlError, match="cannot retry"):
        control.retry(run.pk)


@pytest.mark.django_db
def test_starting_pausing_and_cancelling_in_the_admin_need_permissions(
    client, django_user_model, legacy_artists
):
    legacy_artists(5)
    viewer = django_user_model.objects.create_user("viewer", "v@example.com", "pw-view-123")
    viewer.is_staff = True
    viewer.save()
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_backfillrun"))
    client.force_login(viewer)
    assert client.get("/admin/backfills/backfillrun/start/").status_code == 403
    assert client.post("/admin/backfills/backfillrun/start/", {"backfill": NAME}).status_code == 403
    assert not BackfillRun.objects.exists()
    page = client.get("/admin/backfills/backfillrun/")
    assert page.status_code == 200 and "pause_runs" not in page.text

    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["start_backfillrun", "pause_backfillrun"])
    )
    client.force_login(viewer)
    started = client.post("/admin/backfills/backfillrun/start/", {"backfill": NAME})
    assert started.status_code == 302
    run = BackfillRun.objects.get()
    assert run.started_by == viewer
    page = client.get("/admin/backfills/backfillrun/")
    assert "pause_runs" in page.text and "cancel_runs" not in page.text
    progress = client.get(f"/admin/backfills/backfillrun/{run.pk}/progress/").json()
    assert progress["rows_total"] == 5 and progress["status"] == "running"


# --- stalls and the ETA in the admin --------------------------------------------------


def batches(start: datetime, *seconds: int, rows: int = 100) -> list[dict[str, Any]]:
    """Recent-batch entries as the engine writes them, one `seconds` after `start` each."""
    return [
        {"rows": rows, "ms": 50.0, "at": (start + timedelta(seconds=s)).isoformat()}
        for s in seconds
    ]


def started_run(name: str, **fields: Any) -> BackfillRun:
    run = BackfillRun.objects.create(
        backfill=name,
        status=RunStatus.RUNNING,
        generation=1,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        **fields,
    )
    run.events.create(action="start")
    return run


@pytest.mark.django_db
def test_a_run_without_a_batch_past_the_stale_limit_shows_stalled_with_no_eta(
    admin_client, settings
):
    settings.BACKFILL_STALE_SECONDS = 120
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        start = timezone.now()
        stuck = started_run("stuck", rows_total=10_000, rows_done=600)
        healthy = started_run("healthy", rows_total=10_000, rows_done=3_000)
        BackfillRun.objects.filter(pk=stuck.pk).update(
            recent_batches=batches(start, 60, 61, 62, 63, 64, 65)
        )
        traveller.shift(timedelta(minutes=4))
        # Recovery restarted it (a new heartbeat, no batch): that is not progress.
        BackfillRun.objects.filter(pk=stuck.pk).update(heartbeat_at=timezone.now(), generation=2)
        stuck.events.create(action="recover")
        traveller.shift(timedelta(minutes=1))
        now = timezone.now()
        BackfillRun.objects.filter(pk=healthy.pk).update(
            recent_batches=batches(now - timedelta(seconds=10), 0, 2, 4, 6, 8, 10),
            heartbeat_at=now,
        )

        listing = admin_client.get("/admin/backfills/backfillrun/").text
        change_page = admin_client.get(f"/admin/backfills/backfillrun/{stuck.pk}/change/").text
        stuck_now = admin_client.get(f"/admin/backfills/backfillrun/{stuck.pk}/progress/").json()
        healthy_now = admin_client.get(
            f"/admin/backfills/backfillrun/{healthy.pk}/progress/"
        ).json()

    stalled = "Stalled — no progress for 3 min"  # 3 min 55 s since its last batch
    assert listing.count(stalled) == 1 and stalled in change_page
    assert {k: stuck_now[k] for k in ("state", "stalled", "no_progress_seconds")} == {
        "state": stalled,
        "stalled": True,
        "no_progress_seconds": 235,
    }
    assert stuck_now["eta_seconds"] is None
    # 500 rows in the 10 s between the first and last batch of the window: 50 rows/s by
    # the clock, so the 7,000 rows left take 140 s.
    assert {k: healthy_now[k] for k in ("state", "stalled", "rows_per_second", "eta_seconds")} == {
        "state": "Running",
        "stalled": False,
        "rows_per_second": 50,
        "eta_seconds": 140,
    }


@pytest.mark.django_db
def test_a_run_shown_stalled_is_one_the_recovery_task_restarts(settings):
    settings.BACKFILL_STALE_SECONDS = 120
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        silent = started_run("silent")
        traveller.shift(timedelta(seconds=60))
        resumed = started_run("resumed")
        traveller.shift(timedelta(seconds=61))
        assert silent.stalled_for() == timedelta(seconds=121)
        assert resumed.stalled_for() is None

        assert recover() == 1

        silent.refresh_from_db()
        resumed.refresh_from_db()
        assert (silent.generation, resumed.generation) == (2, 1)
        assert silent.events.filter(action="recover").count() == 1
        # Restarted, yet still without a batch: still stalled, and still counted from
        # its last progress.
        assert silent.stalled_for() == timedelta(seconds=121)


@pytest.mark.django_db
def test_only_a_moving_run_has_an_eta_and_an_ended_one_shows_its_average_rate():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        now = timezone.now()
        recent = batches(now - timedelta(seconds=4), 0, 2, 4)
        paused = started_run("paused", rows_total=1_000, recent_batches=recent)
        BackfillRun.objects.filter(pk=paused.pk).update(status=RunStatus.PAUSED)
        paused.refresh_from_db()
        ended = started_run("ended", rows_total=1_000, rows_done=1_000)
        traveller.shift(timedelta(seconds=40))
        BackfillRun.objects.filter(pk=ended.pk).update(
            status=RunStatus.SUCCEEDED, finished_at=timezone.now()
        )
        ended.refresh_from_db()

        assert paused.eta_seconds is None and ended.eta_seconds is None
        assert ended.rows_per_second == 25.0  # 1,000 rows from start to end in 40 s
        assert ended.state() == "Succeeded"


# --- on a real worker -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_backfill_to_the_end_and_verification_passes(
    project_worker, legacy_artists, capsys
):
    legacy_artists(1_200)
    call_command("backfill", "run", NAME, "--batch-size", "100", "--wait")

    run = BackfillRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert nulls() == 0
    assert_ledger_covers_each_row_once(run, 1_200)
    call_command("verify_sumup_migration")
    assert "OK   Status backfill finished: run #" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_the_site_keeps_answering_while_a_backfill_runs(project_worker, legacy_artists, client):
    ids = legacy_artists(2_000)
    client.force_login(ArtistProfile.objects.select_related("user").get(pk=ids[0]).user)
    run = control.start(NAME, batch_size=100)
    answered = 0
    while BackfillRun.objects.get(pk=run.pk).is_active:
        assert client.get("/accounts/dashboard/").status_code == 200
        answered += 1
        time.sleep(0.01)
    assert answered > 0
    assert BackfillRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_pause_and_resume_on_a_worker(project_worker, legacy_artists, settings):
    settings.BACKFILL_PAUSE_MS = 200  # slow enough to pause mid-run
    legacy_artists(600)
    run = control.start(NAME, batch_size=100)
    deadline = time.monotonic() + 20
    while BackfillRun.objects.get(pk=run.pk).rows_done == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    control.pause(run.pk)
    time.sleep(0.5)  # a slice in flight finishes its batch and stops
    done_when_paused = BackfillRun.objects.get(pk=run.pk).rows_done
    time.sleep(0.5)
    assert BackfillRun.objects.get(pk=run.pk).rows_done == done_when_paused < 600

    control.resume(run.pk)
    while BackfillRun.objects.get(pk=run.pk).is_active:
        assert time.monotonic() < deadline + 20
        time.sleep(0.05)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and nulls() == 0
    assert_ledger_covers_each_row_once(run, 600)


@pytest.mark.django_db
def test_an_artist_the_backfill_has_not_reached_sees_not_connected(legacy_artists, client):
    [profile_id] = legacy_artists(1)
    client.force_login(ArtistProfile.objects.select_related("user").get(pk=profile_id).user)
    page = client.get("/accounts/dashboard/")
    assert page.status_code == 200
    assert 'id="sumup-status">Not connected<' in page.text
    assert "We could not reach your SumUp account" not in page.text
