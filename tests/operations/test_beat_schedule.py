"""Beat's schedule lives in the database, where beat installs it when it starts; health
says when an entry is missing, disabled or late, and names it."""

import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from jobs import app
from jobs.heartbeat import HeartbeatScheduler
from operations.heartbeat import STARTED_KEY, read_started, write_heartbeat
from operations.schedule import schedule_problems

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULE: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE


def _task(name: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("interval").get(name=name)


def _every(name: str) -> timedelta:
    return timedelta(seconds=SCHEDULE[name]["schedule"])


def _healthcheck_fails(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(CommandError, match="Unhealthy: schedule"):
        call_command("healthcheck", "--beat")
    return capsys.readouterr().out


def test_beat_installs_every_entry_with_its_interval_and_records_its_start(heartbeat_redis):
    HeartbeatScheduler(app=app)

    assert set(SCHEDULE) == {
        "sumup-token-refresh-sweep",
        "campaigns-recover",
        "backfills-recover",
        "connections-history",
    }
    for name, entry in SCHEDULE.items():
        task = _task(name)
        assert task.enabled
        assert task.task == entry["task"]
        assert task.interval is not None
        assert task.interval.schedule.run_every == _every(name)
        assert task.expire_seconds == entry["schedule"], "a backlog never piles copies up"
    started = read_started(heartbeat_redis)
    assert started is not None and abs(time.time() - started) < 5


def test_an_entry_disabled_in_the_admin_stays_disabled_when_beat_starts_again(heartbeat_redis):
    HeartbeatScheduler(app=app)
    PeriodicTask.objects.filter(name="campaigns-recover").update(enabled=False)

    HeartbeatScheduler(app=app)

    assert _task("campaigns-recover").enabled is False
    assert _task("backfills-recover").enabled is True


def test_an_entry_deleted_from_the_schedule_is_installed_again_when_beat_starts(heartbeat_redis):
    HeartbeatScheduler(app=app)
    PeriodicTask.objects.filter(name="backfills-recover").delete()

    HeartbeatScheduler(app=app)

    assert _task("backfills-recover").interval is not None


def test_the_beat_check_passes_when_every_entry_ran_within_its_interval(healthy_beat, capsys):
    call_command("healthcheck", "--beat")

    out = capsys.readouterr().out
    assert "OK   beat" in out
    assert "OK   schedule" in out
    assert "every entry scheduled and on time" in out


def test_a_beat_with_an_empty_schedule_reads_as_unhealthy(heartbeat_redis, capsys):
    write_heartbeat(heartbeat_redis)  # the loop itself is alive

    out = _healthcheck_fails(capsys)

    assert "OK   beat" in out
    for name in SCHEDULE:
        assert f"{name}: not in the schedule" in out


def test_a_missing_entry_is_named(healthy_beat, capsys):
    PeriodicTask.objects.filter(name="sumup-token-refresh-sweep").delete()

    out = _healthcheck_fails(capsys)

    assert "sumup-token-refresh-sweep: not in the schedule" in out
    assert "campaigns-recover" not in out and "backfills-recover" not in out


def test_a_disabled_entry_is_named(healthy_beat, capsys):
    PeriodicTask.objects.filter(name="campaigns-recover").update(enabled=False)

    assert "campaigns-recover: disabled" in _healthcheck_fails(capsys)


def test_an_entry_not_sent_for_twice_its_interval_is_late(healthy_beat, heartbeat_redis, capsys):
    heartbeat_redis.set(STARTED_KEY, repr(time.time() - 3600))
    overdue = _every("backfills-recover") * 2 + timedelta(seconds=30)
    PeriodicTask.objects.filter(name="backfills-recover").update(
        last_run_at=timezone.now() - overdue
    )

    out = _healthcheck_fails(capsys)

    every = SCHEDULE["backfills-recover"]["schedule"]
    assert (
        f"backfills-recover: last ran {overdue.total_seconds():.0f} s ago (every {every:.0f} s)"
        in (out)
    )
    assert "campaigns-recover" not in out


def test_an_entry_within_twice_its_interval_is_on_time(healthy_beat):
    last_run = timezone.now()
    PeriodicTask.objects.filter(name="backfills-recover").update(last_run_at=last_run)
    just_inside = last_run + _every("backfills-recover") * 2 - timedelta(seconds=1)

    assert schedule_problems(just_inside, None, names=["backfills-recover"]) == []


def test_a_beat_that_just_started_has_twice_an_interval_to_send_each_entry(heartbeat_redis):
    HeartbeatScheduler(app=app)  # a new schedule: no entry has run yet
    started = timezone.now()
    twice = _every("backfills-recover") * 2

    on_time = schedule_problems(started + twice, started, names=["backfills-recover"])
    late = schedule_problems(
        started + twice + timedelta(seconds=1), started, names=["backfills-recover"]
    )

    assert on_time == []
    assert late == [
        f"backfills-recover: never ran (every {_every('backfills-recover').seconds} s; "
        f"beat started {twice.seconds + 1} s ago)"
    ]


def test_readyz_names_the_late_entry(scraper, healthy_beat, heartbeat_redis):
    heartbeat_redis.set(STARTED_KEY, repr(time.time() - 3600))
    PeriodicTask.objects.filter(name="sumup-token-refresh-sweep").update(
        last_run_at=timezone.now() - timedelta(hours=1)
    )

    response = scraper.get("/readyz")

    assert response.status_code == 503
    schedule = response.json()["checks"]["schedule"]
    assert schedule["ok"] is False
    assert schedule["detail"].startswith("sumup-token-refresh-sweep: last ran 3600 s ago")


def test_the_admin_lists_every_entry_with_its_interval_and_last_run(healthy_beat, admin_client):
    response = admin_client.get("/admin/django_celery_beat/periodictask/")

    assert response.status_code == 200
    page = response.content.decode()
    for name, entry in SCHEDULE.items():
        assert name in page
        assert f"every {entry['schedule']:.0f} seconds" in page
    assert "last run" in page.lower()
    assert page.count(timezone.localtime().strftime("%Y")) >= len(SCHEDULE), "each last run"
