"""PostgreSQL: pg_dump's custom format from one exported snapshot, and pg_restore.

Connection details reach the client tools through PG* environment variables, so a
password never appears on a command line (where `ps` would show it).
"""

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from operations.backups.base import BackupError
from operations.backups.db import open_connection
from operations.backups.manifest import DatabaseState, project_tables, read_state

SUFFIX = ".dump"
# A backup or restore queued behind a long lock (a running migration, a live app during
# restore) fails with a clear message instead of hanging the operator's shell.
LOCK_WAIT = "60s"
LIST_TIMEOUT = 300  # seconds for `pg_restore --list`
# `COPY public.<table> (<columns>) FROM stdin;`, as pg_restore writes a table's data.
_COPY_HEADER = re.compile(r"^COPY \S+ \((?P<columns>[^)]*)\) FROM stdin;$")
_COPY_END = "\\."
_COPY_NULL = "\\N"

_SETTINGS_ENV = {
    "HOST": "PGHOST",
    "PORT": "PGPORT",
    "USER": "PGUSER",
    "PASSWORD": "PGPASSWORD",
    "NAME": "PGDATABASE",
}
_OPTIONS_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
}


def client_env(settings_dict: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    for key, variable in _SETTINGS_ENV.items():
        if settings_dict.get(key):
            env[variable] = str(settings_dict[key])
    options = settings_dict.get("OPTIONS") or {}
    for key, variable in _OPTIONS_ENV.items():
        if options.get(key):
            env[variable] = str(options[key])
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found on PATH: install the PostgreSQL client tools")
    return path


def _run(
    argv: list[str],
    settings_dict: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """Run a client tool; a dump or restore takes as long as the data needs (no timeout),
    waits on locks only up to LOCK_WAIT."""
    try:
        done = subprocess.run(  # noqa: S603 (fixed program, arguments are not shell-parsed)
            argv,
            env=env or client_env(settings_dict),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{Path(argv[0]).name} timed out") from None
    if done.returncode != 0:
        message = done.stderr.strip()[-2000:] or f"exit status {done.returncode}"
        password = str(settings_dict.get("PASSWORD") or "")
        if password:
            message = message.replace(password, "***")
        raise BackupError(f"{Path(argv[0]).name} failed: {message}")
    return done.stdout


def dump(settings_dict: dict[str, Any], target: Path) -> DatabaseState:
    """pg_dump into `target`, counting rows in the very snapshot pg_dump copies."""
    pg_dump, pg_restore = _tool("pg_dump"), _tool("pg_restore")
    # The exported snapshot lives as long as this read-only transaction; closing the
    # connection afterwards ends it, there is nothing to commit.
    with open_connection(settings_dict, "backup_snapshot") as db:
        db.set_autocommit(False)
        with db.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cursor.fetchone()
        state = read_state(db, project_tables())
        _run(
            [
                pg_dump,
                "--format=custom",
                "--no-password",
                f"--lock-wait-timeout={LOCK_WAIT}",
                f"--snapshot={snapshot}",
                f"--file={target}",
            ],
            settings_dict,
        )
    listing = _run([pg_restore, "--list", str(target)], settings_dict, timeout=LIST_TIMEOUT)
    missing = [
        table
        for table in state.row_counts
        if not re.search(rf"^\d+; \d+ \d+ TABLE DATA \S+ {re.escape(table)} ", listing, re.M)
    ]
    if missing:
        raise BackupError(f"pg_restore --list shows no data for: {', '.join(missing)}")
    return state


def restore(settings_dict: dict[str, Any], archive: Path) -> None:
    env = client_env(settings_dict)
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c lock_timeout={LOCK_WAIT}".strip()
    _run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--no-password",
            f"--dbname={settings_dict['NAME']}",
            str(archive),
        ],
        settings_dict,
        env=env,
    )


def _unquote(identifier: str) -> str:
    identifier = identifier.strip()
    if identifier.startswith('"') and identifier.endswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def table_rows(
    settings_dict: dict[str, Any], archive: Path, table: str, columns: tuple[str, ...]
) -> Iterator[tuple[str | None, ...]]:
    """The archive's rows of `table`, read from the file alone (no database is touched),
    as the text of `columns`; nothing when the archive holds no such table or columns.

    Streamed from `pg_restore --data-only`, so a large table is never held in memory.
    Values come back in COPY's text form: fine for the tokens and keys read here, whose
    characters COPY never escapes."""
    argv = [_tool("pg_restore"), "--data-only", f"--table={table}", "--file=-", str(archive)]
    process = subprocess.Popen(  # noqa: S603 (fixed program, arguments are not shell-parsed)
        argv,
        env=client_env(settings_dict),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        positions: list[int] | None = None
        for line in process.stdout:
            line = line.rstrip("\n")
            if positions is None:
                header = _COPY_HEADER.match(line)
                if header is not None:
                    names = [_unquote(name) for name in header["columns"].split(",")]
                    if not set(columns) <= set(names):
                        break
                    positions = [names.index(column) for column in columns]
                continue
            if line == _COPY_END:
                break
            fields = line.split("\t")
            yield tuple(None if fields[i] == _COPY_NULL else fields[i] for i in positions)
    finally:
        process.stdout.close()
        process.kill()
        stderr = process.stderr.read()
        process.stderr.close()
        returncode = process.wait()
    # Killed on purpose once the rows were read (-9): only an earlier exit is a failure.
    if returncode not in (0, -9):
        raise BackupError(f"pg_restore --data-only failed: {stderr.strip()[-2000:]}")
