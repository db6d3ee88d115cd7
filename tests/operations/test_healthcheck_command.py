"""manage.py healthcheck: the readiness checks for one process, as an exit status."""

import socket
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command

from operations.heartbeat import write_heartbeat


@pytest.mark.django_db(transaction=True)
def test_beat_check_passes_with_a_fresh_heartbeat_and_schedule(healthy_beat, capsys):
    call_command("healthcheck", "--beat")

    out = capsys.readouterr().out
    assert "OK   beat" in out
    assert "last heartbeat" in out
    assert "OK   schedule" in out
    assert "database" not in out


def test_beat_check_fails_with_a_stale_heartbeat(heartbeat_redis, capsys):
    with time_machine.travel(timedelta(minutes=-3)):
        write_heartbeat(heartbeat_redis)

    with pytest.raises(CommandError, match="Unhealthy: beat"):
        call_command("healthcheck", "--beat")

    out = capsys.readouterr().out
    assert "FAIL beat" in out
    assert "(limit 120 s)" in out


def test_beat_check_fails_when_beat_never_wrote_a_heartbeat(heartbeat_redis, capsys):
    with pytest.raises(CommandError, match="Unhealthy: beat"):
        call_command("healthcheck", "--beat")

    assert "no heartbeat recorded" in capsys.readouterr().out


@pytest.mark.django_db
def test_without_flags_it_checks_what_the_web_needs(capsys):
    call_command("healthcheck")

    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["OK", "database"],
        ["OK", "redis"],
        ["OK", "migrations"],
    ]


@pytest.mark.django_db
def test_without_flags_it_fails_when_redis_is_down(settings, capsys):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    with pytest.raises(CommandError, match="Unhealthy: redis"):
        call_command("healthcheck")

    assert "Connection refused" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_worker_check_passes_when_a_worker_answers(project_worker, capsys):
    call_command("healthcheck", "--worker", "--any")
    call_command("healthcheck", "--worker", "--destination", project_worker.hostname)

    out = capsys.readouterr().out
    assert out.count("OK   worker") == 2
    assert f"{project_worker.hostname} answered a ping" in out


def test_worker_check_asks_this_hosts_worker_by_default(monkeypatch, capsys):
    # A broker no worker consumes from: the command must name whom it asked.
    monkeypatch.setenv("CELERY_BROKER_URL", settings.REDIS_URL)

    with pytest.raises(CommandError, match="Unhealthy: worker"):
        call_command("healthcheck", "--worker")

    expected = f"celery@{socket.gethostname()} did not answer a ping within 1 s"
    assert expected in capsys.readouterr().out


def test_any_and_destination_need_worker():
    with pytest.raises(CommandError, match="go with --worker"):
        call_command("healthcheck", "--any")
