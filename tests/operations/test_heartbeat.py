"""Beat's heartbeat, written by the scheduler itself on its tick."""

import os
import subprocess
import sys
import time
from datetime import timedelta

import time_machine
from celery import Celery
from django.conf import settings

from jobs.heartbeat import HEARTBEAT_INTERVAL, HeartbeatScheduler, read_heartbeat

BEAT_START_TIMEOUT = 60  # seconds for a beat subprocess to write its first heartbeat


def _scheduler(tmp_path) -> HeartbeatScheduler:
    # An app with no schedule: ticking must not send real tasks to the test broker.
    app = Celery("heartbeat-test", set_as_current=False, fixups=[])
    app.conf.beat_schedule = {}
    return HeartbeatScheduler(app=app, schedule_filename=str(tmp_path / "schedule"))


def test_the_scheduler_writes_a_heartbeat_when_it_ticks(tmp_path, heartbeat_redis):
    scheduler = _scheduler(tmp_path)

    sleep_for = scheduler.tick()

    written = read_heartbeat(heartbeat_redis)
    assert written is not None and abs(time.time() - written) < 5
    assert sleep_for == HEARTBEAT_INTERVAL, "beat wakes in time for the next heartbeat"
    assert 0 < heartbeat_redis.ttl("jobs:beat:heartbeat") <= 24 * 3600


def test_the_scheduler_writes_at_most_every_30_seconds(tmp_path, heartbeat_redis):
    scheduler = _scheduler(tmp_path)
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


def test_beat_started_with_the_scheduler_flag_writes_the_heartbeat(tmp_path, heartbeat_redis):
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "jobs",
            "beat",
            "--scheduler",
            "jobs.heartbeat:HeartbeatScheduler",
            "--schedule",
            str(tmp_path / "celerybeat-schedule"),
            "--loglevel=WARNING",
        ],
        cwd=settings.PROJECT_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "events.settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + BEAT_START_TIMEOUT
        while read_heartbeat(heartbeat_redis) is None and beat.poll() is None:
            assert time.monotonic() < deadline, "beat wrote no heartbeat"
            time.sleep(0.1)
    finally:
        beat.terminate()
        output, _ = beat.communicate(timeout=30)
    written = read_heartbeat(heartbeat_redis)
    assert written is not None, output
    assert abs(time.time() - written) < BEAT_START_TIMEOUT
