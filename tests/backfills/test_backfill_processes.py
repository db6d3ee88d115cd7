"""Backfills with real `celery -A jobs worker` processes: a worker killed mid-run, and a
data migration that hands a large table to the workers."""

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.migration_operations import NullsRemainError
from backfills import control
from backfills.models import BackfillRun, RunStatus
from jobs.backfills import recover

if TYPE_CHECKING:
    from tests.support.backfills import assert_ledger_covers_each_row_once, nulls
    from tests.support.polling import wait_for
    from tests.support.worker_processes import WorkerProcesses, purge_queue
else:
    from support.backfills import assert_ledger_covers_each_row_once, nulls
    from support.polling import wait_for
    from support.worker_processes import WorkerProcesses, purge_queue

NAME = "sumup_connection_status"

# The in-process worker thread of other tests would consume these tasks too.
pytestmark = pytest.mark.processes


@pytest.fixture(autouse=True)
def empty_queue():
    purge_queue()
    yield
    purge_queue()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_run_leaves_nothing_skipped_or_done_twice(
    legacy_artists, settings, tmp_path: Path
):
    settings.BACKFILL_STALE_SECONDS = 2
    legacy_artists(20_000)
    with WorkerProcesses(1, log_dir=tmp_path / "first") as workers:
        run = control.start(NAME, batch_size=100)
        # Small, paced batches: many slices, so the kill lands in the middle of the run.
        BackfillRun.objects.filter(pk=run.pk).update(target_batch_ms=1, pause_ms=20)
        wait_for(lambda: BackfillRun.objects.get(pk=run.pk).rows_done >= 2_000, "progress", 60)
        workers.kill(0)
    stopped = BackfillRun.objects.get(pk=run.pk)
    assert stopped.status == RunStatus.RUNNING and 0 < nulls() < 20_000

    wait_for(lambda: recover() == 1, "the stale heartbeat to be noticed", 30)
    with WorkerProcesses(1, log_dir=tmp_path / "second"):
        wait_for(lambda: not BackfillRun.objects.get(pk=run.pk).is_active, "the run to end", 120)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert nulls() == 0
    assert_ledger_covers_each_row_once(run, 20_000)
    assert run.generation == 2
    assert run.events.filter(action="recover").count() == 1


@pytest.mark.django_db(transaction=True)
def test_above_the_inline_limit_0004_hands_the_backfill_to_the_workers(
    settings, tmp_path: Path, capsys
):
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0003_add_sumup_oauth_fields")])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO accounts_user (password, username, first_name, last_name, email, "
            "is_superuser, is_active, is_staff, date_joined, user_type, phone, email_verified) "
            "SELECT '!', 'legacy' || n, '', '', 'legacy' || n || '@example.com', false, true, "
            "false, now(), 'artist', '', true FROM generate_series(1, 3000) AS n"
        )
        cursor.execute(
            "INSERT INTO accounts_artistprofile (user_id, display_name, bio, business_name, "
            "is_approved, created_at, updated_at) SELECT id, username, '', '', true, now(), "
            "now() FROM accounts_user"
        )
    settings.BACKFILL_INLINE_MAX_ROWS = 1_000
    try:
        call_command("migrate", "accounts", "0004_migrate_existing_artists_to_sumup")
        assert (
            "3000 artists to fill exceed BACKFILL_INLINE_MAX_ROWS=1000" in capsys.readouterr().out
        )
        assert nulls() == 3_000, "the migration returned without doing the work"
        run = BackfillRun.objects.get(backfill=NAME)
        assert run.status == RunStatus.PENDING and run.rows_total == 3_000

        with pytest.raises(NullsRemainError):
            call_command("migrate", "accounts")
        with pytest.raises(Exception, match="check"):
            call_command("verify_sumup_migration")
        assert "run #" in capsys.readouterr().out

        with WorkerProcesses(2, log_dir=tmp_path):  # they pick the run up as they start
            wait_for(lambda: not BackfillRun.objects.get(pk=run.pk).is_active, "the run", 120)
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED and nulls() == 0
        call_command("migrate", "accounts")  # the finalizing migration now goes through
        call_command("verify_sumup_migration")
        assert "All 3000 artists have status 'not_connected'." in capsys.readouterr().out
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE accounts_artistprofile SET sumup_connection_status = 'not_connected' "
                "WHERE sumup_connection_status IS NULL"
            )
        call_command("migrate")
