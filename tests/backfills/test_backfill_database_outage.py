"""A backfill on a real `celery -A jobs worker` process whose PostgreSQL crashes mid-run
(`pg_ctl -m immediate stop`) and comes back: the run resumes on its own and finishes,
each row done exactly once. The cluster is the test's own; the suite's is never touched."""

import itertools
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.support.chaos import PrivatePostgres
    from tests.support.polling import poll
    from tests.support.rehearsal import manage, output, shell
    from tests.support.worker_processes import WorkerProcesses, purge_queue, worker_environment
else:
    from support.chaos import PrivatePostgres
    from support.polling import poll
    from support.rehearsal import manage, output, shell
    from support.worker_processes import WorkerProcesses, purge_queue, worker_environment

pytestmark = pytest.mark.processes

ROWS = 3_000
OUTAGE_SECONDS = 15.0
RECOVERY_LIMIT = 120.0  # seconds from the database's return to the run's end

# Artists as they were before accounts' 0004 (status NULL), and a run of small, paced
# batches so that the outage lands mid-run; the chain is queued once all of it commits.
SEED = f"""
import json
from django.db import connection, transaction
from accounts.models import ArtistProfile, User
from backfills import control
from backfills.models import BackfillRun

with connection.cursor() as cursor:
    cursor.execute(
        "ALTER TABLE accounts_artistprofile ALTER COLUMN sumup_connection_status DROP NOT NULL"
    )
users = User.objects.bulk_create(
    User(username=f"legacy{{i}}", email=f"legacy{{i}}@example.com", user_type="artist")
    for i in range({ROWS})
)
ArtistProfile.objects.bulk_create(
    ArtistProfile(user=user, display_name=user.username) for user in users
)
ArtistProfile.objects.update(sumup_connection_status=None)
with transaction.atomic():
    run = control.start("sumup_connection_status", batch_size=100)
    BackfillRun.objects.filter(pk=run.pk).update(target_batch_ms=1, pause_ms=200)
print(json.dumps(run.pk))
"""


def run_row(postgres: PrivatePostgres, run_id: int) -> dict[str, Any]:
    with postgres.connect("events") as db:
        cursor = db.execute(
            "SELECT status, rows_done, generation, last_error FROM backfills_backfillrun "
            "WHERE id = %s",
            (run_id,),
        )
        status, rows_done, generation, last_error = cursor.fetchone() or (None,) * 4
    return {
        "status": status,
        "rows_done": rows_done,
        "generation": generation,
        "last_error": last_error,
    }


def wait_for(condition: Any, timeout: float, what: str, workers: WorkerProcesses) -> float:
    """Seconds until `condition` held, the database coming back up meanwhile."""

    def answered() -> bool:
        try:
            return bool(condition())
        except psycopg.OperationalError:
            return False  # the database is still coming up

    done, waited = poll(answered, timeout)
    if not done:
        raise AssertionError(f"gave up waiting for {what}\n{workers.log_tails()}")
    return waited


def test_a_backfill_survives_the_database_crashing_mid_run(tmp_path: Path) -> None:
    purge_queue()
    with PrivatePostgres() as postgres:
        url = postgres.create_database("events")
        # The venv first on PATH: manage.py runs with the project's own `python`.
        venv_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
        env = worker_environment({"DATABASE_URL": url, "PATH": venv_path})
        migrated = manage(env, "migrate", "--no-input")
        assert migrated.returncode == 0, output(migrated)
        run_id = shell(env, SEED)

        with WorkerProcesses(
            1, log_dir=tmp_path / "workers", concurrency=2, env={"DATABASE_URL": url}
        ) as workers:
            wait_for(lambda: run_row(postgres, run_id)["rows_done"] >= 600, 60, "progress", workers)
            postgres.stop_immediately()
            time.sleep(OUTAGE_SECONDS)
            postgres.start()
            recovered_in = wait_for(
                lambda: run_row(postgres, run_id)["status"] != "running",
                RECOVERY_LIMIT,
                "the run to end",
                workers,
            )
            workers.check_alive()
            log = (workers.log_dir / "worker-0.log").read_text()

        run = run_row(postgres, run_id)
        with postgres.connect("events") as db:
            left = db.execute(
                "SELECT count(*) FROM accounts_artistprofile WHERE sumup_connection_status IS NULL"
            ).fetchone()
            batches = db.execute(
                "SELECT low, high, rows FROM backfills_backfillbatch WHERE run_id = %s "
                "ORDER BY low",
                (run_id,),
            ).fetchall()
    purge_queue()

    assert run["status"] == "succeeded", run
    assert f"backfill run {run_id}: no database connection" in log
    assert run["generation"] == 1, "the run's own chain resumed it, not a restart"
    assert left == (0,)
    assert sum(rows for _low, _high, rows in batches) == ROWS == run["rows_done"]
    for (_, before, _), (after, _, _) in itertools.pairwise(batches):
        assert before is not None and after == before, "ranges are contiguous, none twice"
    assert batches[-1][1] is None, "the last batch ran to the end of the table"
    assert recovered_in < RECOVERY_LIMIT
