"""The local run (`make run`) on SQLite: the web, beat and every worker process write to
one file at once, and none of them may fail with "database is locked"; the logins come
last, once the web and the worker answer, and `seed_demo --show` prints them again."""

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.polling import wait_for
else:
    from support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
LOGINS = "Artist login: demo-artist / jersey-demo-2026    Staff login: admin / jersey-admin-2026"
BANNER_END = "Logins again: make logins"

WRITERS = 3
TRANSACTIONS = 150  # per writer: enough to overlap many times, done in about a second

# Each transaction reads, then writes what it read: the shape of a claim. Under SQLite's
# default (deferred) transactions two of them that both read cannot both write, and one
# fails at once with "database is locked" whatever the busy timeout.
WRITER = f"""
import django
django.setup()
from django.db import connection, transaction
for _ in range({TRANSACTIONS}):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tally")
        (seen,) = cursor.fetchone()
        cursor.execute("INSERT INTO tally (seen) VALUES (%s)", [seen])
"""


def django_process(code: str, database: Path) -> subprocess.Popen[str]:
    environ = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "events.settings",
        "DEBUG": "true",  # the local run (`make run`)
        "DATABASE_URL": f"sqlite:///{database}",
    }
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sqlite_settings_turn_on_wal_a_busy_timeout_and_immediate_transactions(tmp_path):
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default']['OPTIONS']))"
    )
    process = django_process(code, tmp_path / "db.sqlite3")
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    assert json.loads(out) == {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }


def test_processes_writing_one_sqlite_file_at_once_wait_their_turn(tmp_path):
    database = tmp_path / "db.sqlite3"
    with sqlite3.connect(database) as setup:
        setup.execute("CREATE TABLE tally (seen INTEGER NOT NULL)")

    writers = [django_process(WRITER, database) for _ in range(WRITERS)]
    results = [writer.communicate(timeout=120) for writer in writers]

    for writer, (_, err) in zip(writers, results, strict=True):
        assert "database is locked" not in err
        assert writer.returncode == 0, err
    with sqlite3.connect(database) as check:
        (journal_mode,) = check.execute("PRAGMA journal_mode").fetchone()
        total, distinct = check.execute(
            "SELECT count(*), count(DISTINCT seen) FROM tally"
        ).fetchone()
    assert journal_mode == "wal"
    # Every transaction saw all the ones committed before it: they ran one after another.
    assert total == distinct == WRITERS * TRANSACTIONS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalRun:
    """`scripts/run-local` as `make run` starts it, its output (stdout and stderr, in the
    order written) gathered line by line."""

    def __init__(self, database: Path) -> None:
        self.web_port = free_port()
        self.environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        self.environ.update(
            DATABASE_URL=f"sqlite:///{database}",
            WEB_PORT=str(self.web_port),
            FAKE_SUMUP_PORT=str(free_port()),
            START_TIMEOUT="120",  # a busy test machine starts slower than a laptop
        )
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(REPO / "scripts" / "run-local")],
            cwd=REPO,
            env=self.environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its children are stopped with it
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def still_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError("run-local stopped:\n" + "\n".join(self.lines[-40:]))

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PYTHON), "webapp/manage.py", *args],
            cwd=REPO,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # its trap stops every process it started
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of its group is left
        self.process.wait(timeout=30)
        self.reader.join(timeout=10)


@pytest.fixture
def local_run(tmp_path: Path) -> Iterator[LocalRun]:
    run = LocalRun(tmp_path / "db.sqlite3")
    yield run
    run.stop()


def users(database: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as reader:
        return reader.execute(
            "SELECT id, username, password, last_login FROM accounts_user ORDER BY id"
        ).fetchall()


def test_it_prints_the_logins_last_and_again_on_demand(local_run, tmp_path):
    wait_for(
        lambda: BANNER_END in [line.strip() for line in local_run.lines],
        "the local run's banner",
        timeout=240,
        interval=0.5,
        explain=lambda: "\n".join(local_run.lines[-40:]),
        check=local_run.still_running,
    )
    lines = [line.strip() for line in local_run.lines]
    banner = lines.index("Jersey Events is running.")
    ready = [n for n, line in enumerate(lines) if re.search(r"celery@\S+ ready\.$", line)]

    assert ready and ready[0] < banner, "\n".join(lines)
    assert lines[banner + 1 : banner + 6] == [
        f"Open http://127.0.0.1:{local_run.web_port}/accounts/dashboard/",
        LOGINS,
        f"Admin: http://127.0.0.1:{local_run.web_port}/admin/    Fake SumUp: "
        f"http://127.0.0.1:{local_run.environ['FAKE_SUMUP_PORT']}/authorize",
        BANNER_END,
        "Ctrl-C stops everything.",
    ]
    web = http.client.HTTPConnection("127.0.0.1", local_run.web_port, timeout=10)
    web.request("GET", "/healthz")
    assert web.getresponse().status == 200
    web.close()

    database = tmp_path / "db.sqlite3"
    before = users(database)
    shown = local_run.manage("seed_demo", "--show")

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == LOGINS
    assert users(database) == before and len(before) == 2, "--show changes nothing"


def test_it_says_so_when_the_logins_were_never_created(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environ.update(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DEBUG="true")

    shown = subprocess.run(
        [str(PYTHON), "webapp/manage.py", "seed_demo", "--show"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "No demo logins yet: `make run` creates them."
    assert not (tmp_path / "db.sqlite3").exists(), "--show creates no database"
