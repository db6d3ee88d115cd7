"""Beat's heartbeat, written by the scheduler itself on its tick; and beat, started as the
Procfile starts it, sending every entry of its schedule with no manual step."""

import shlex
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import time_machine
from celery import Celery
from django.conf import settings
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from jobs.heartbeat import HeartbeatScheduler
from operations.heartbeat import HEARTBEAT_INTERVAL, read_heartbeat

if TYPE_CHECKING:
    from tests.support.worker_processes import worker_environment
else:
    from support.worker_processes import worker_environment

BEAT_START_TIMEOUT = 60  # seconds for a beat subprocess to start and send its entries
PROCFILE = Path(settings.PROJECT_DIR) / "Procfile"
VENV_BIN = Path(settings.PROJECT_DIR) / ".venv" / "bin"

pytestmark = pytest.mark.django_db(transaction=True)


def _scheduler() -> HeartbeatScheduler:
    # An app with no schedule of its own: ticking must not send real tasks to the broker.
    app = Celery("heartbeat-test", set_as_current=False, fixups=[])
    app.conf.beat_schedule = {}
    return HeartbeatScheduler(app=app)


def _procfile_command(process: str) -> list[str]:
    lines = dict(line.split(": ", 1) for line in PROCFILE.read_text().splitlines() if line)
    argv = shlex.split(lines[process])
    return [str(VENV_BIN / argv[0]), *argv[1:]]


def test_the_scheduler_writes_a_heartbeat_when_it_ticks(heartbeat_redis):
    scheduler = _scheduler()

    sleep_for = scheduler.tick()

    written = read_heartbeat(heartbeat_redis)
    assert written is not None and abs(time.time() - written) < 5
    assert sleep_for <= HEARTBEAT_INTERVAL, "beat wakes in time for the next heartbeat"
    assert 0 < heartbeat_redis.ttl("jobs:beat:heartbeat") <= 24 * 3600


def test_the_scheduler_writes_at_most_every_30_seconds(heartbeat_redis):
    scheduler = _scheduler()
    with time_machine.travel(time.time(), tick=False) as traveller:
        scheduler.tick()
        first = read_heartbeat(heartbeat_redis)
        assert first is not None
        traveller.shift(timedelta(seconds=29))
        scheduler.tick()
        assert read_heartbeat(heartbeat_redis) == first
        traveller.shift(timedelta(seconds=1))
        scheduler.tick()
        assert read_heartbeat(heartbeat_redis) == first + 30


def test_beat_started_as_the_procfile_starts_it_sends_every_entry(tmp_path, heartbeat_redis):
    # Only the intervals come from the environment, short enough to watch two rounds.
    intervals = {"SUMUP_REFRESH_SWEEP_INTERVAL": "10", "CAMPAIGNS_RECOVER_INTERVAL": "2"}
    intervals["BACKFILLS_RECOVER_INTERVAL"] = intervals["CONNECTION_HISTORY_INTERVAL"] = "2"
    log = tmp_path / "beat.log"
    with log.open("wb") as output:
        beat = subprocess.Popen(
            _procfile_command("beat"),
            cwd=settings.PROJECT_DIR,
            env=worker_environment(intervals),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    sent = PeriodicTask.objects.filter(
        name__in=settings.CELERY_BEAT_SCHEDULE, last_run_at__isnull=False
    )
    try:
        deadline = time.monotonic() + BEAT_START_TIMEOUT
        while sent.count() < len(settings.CELERY_BEAT_SCHEDULE) and beat.poll() is None:
            assert time.monotonic() < deadline, f"beat did not send every entry\n{log.read_text()}"
            time.sleep(0.5)
        call_command("healthcheck", "--beat")
    finally:
        beat.terminate()
        beat.wait(30)
    runs = dict(PeriodicTask.objects.values_list("name", "total_run_count"))
    assert all(runs[name] >= 1 for name in settings.CELERY_BEAT_SCHEDULE), runs
    written = read_heartbeat(heartbeat_redis)
    assert written is not None and abs(time.time() - written) < BEAT_START_TIMEOUT
