"""The local run (`make run`) on SQLite: the web, beat and every worker process write to
one file at once, and none of them may fail with "database is locked"."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

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
