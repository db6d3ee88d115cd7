"""SQLite: copies through the online backup API, so the service can keep running."""

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from operations.backups.base import BackupError, Finding
from operations.backups.db import open_connection
from operations.backups.manifest import DatabaseState, project_tables, read_state

SUFFIX = ".sqlite3"
BUSY_TIMEOUT = 30.0  # seconds to wait for a writer's lock before giving up


def _database_file(settings_dict: dict[str, Any]) -> Path:
    name = str(settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        raise BackupError(f"Only a SQLite database file can be backed up, not {name!r}")
    return Path(name)


def _integrity(db: sqlite3.Connection) -> str:
    rows = db.execute("PRAGMA integrity_check").fetchall()
    return "ok" if rows == [("ok",)] else "; ".join(str(row[0]) for row in rows[:5])


def dump(settings_dict: dict[str, Any], target: Path) -> DatabaseState:
    """Copy the live database into `target` (an empty file) and check the copy."""
    source = _database_file(settings_dict)
    if not source.is_file():
        raise BackupError(f"SQLite database file not found: {source}")
    try:
        # mode=rw: a missing file must be an error, not a new empty database.
        with (
            closing(
                sqlite3.connect(f"{source.as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT)
            ) as live,
            closing(sqlite3.connect(target)) as copy,
        ):
            live.backup(copy)  # one step: a consistent snapshot even while others write
            verdict = _integrity(copy)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {source} failed: {exc}") from None
    if verdict != "ok":
        raise BackupError(f"The copy of {source} fails PRAGMA integrity_check: {verdict}")
    # Counted on the copy, so the manifest describes exactly what the file holds.
    with open_connection({**settings_dict, "NAME": str(target)}, "backup_copy") as copy_db:
        return read_state(copy_db, project_tables())


def restore(settings_dict: dict[str, Any], archive: Path) -> None:
    target = _database_file(settings_dict)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            closing(sqlite3.connect(f"{archive.resolve().as_uri()}?mode=ro", uri=True)) as backup,
            closing(sqlite3.connect(target, timeout=BUSY_TIMEOUT)) as live,
        ):
            backup.backup(live)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite restore into {target} failed: {exc}") from None


def check(connection: BaseDatabaseWrapper) -> list[Finding]:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA integrity_check")
        rows = cursor.fetchall()
    if rows == [("ok",)]:
        return [Finding("Integrity check", "ok", "PRAGMA integrity_check: ok")]
    detail = "; ".join(str(row[0]) for row in rows[:5])
    return [Finding("Integrity check", "fail", f"PRAGMA integrity_check: {detail}")]


def table_rows(
    settings_dict: dict[str, Any], archive: Path, table: str, columns: tuple[str, ...]
) -> Iterator[tuple[str | None, ...]]:
    """The archive's rows of `table` as `columns`, read from the file alone (opened read
    only); nothing when the archive holds no such table or columns."""
    try:
        with closing(sqlite3.connect(f"{archive.resolve().as_uri()}?mode=ro", uri=True)) as db:
            present = {str(row[1]) for row in db.execute(f'PRAGMA table_info("{table}")')}
            if not set(columns) <= present:
                return
            names = ", ".join(f'"{column}"' for column in columns)
            yield from db.execute(f'SELECT {names} FROM "{table}"')  # noqa: S608 (our identifiers)
    except sqlite3.Error as exc:
        raise BackupError(f"Reading {table} from {archive} failed: {exc}") from None
