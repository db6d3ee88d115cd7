"""What a backup holds, written beside it as JSON, and how a database is compared to it.

The manifest is the restore's yardstick: the archive's size and SHA-256 show the file
is the one that was written, and the migration state and row counts, read from the
same snapshot the archive was made from, show the restored database holds that data.
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from operations.backups.base import BackupError, Finding

FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"
HASH_CHUNK = 1024 * 1024  # bytes read per step while hashing
MIGRATIONS_TABLE = MigrationRecorder.Migration._meta.db_table


@dataclass(frozen=True)
class DatabaseState:
    """Migration state and row counts of one database at one moment."""

    migrations: dict[str, list[str]]  # app label -> latest applied migration name(s)
    row_counts: dict[str, int]  # table -> rows, for the project's own apps
    tables: list[str]  # every table, so a restore can spot ones the backup lacks


@dataclass(frozen=True)
class Manifest:
    file: str  # the archive's name, relative so the pair can be moved together
    engine: str  # connection.vendor: "sqlite" or "postgresql"
    database: str
    created_at: str  # ISO 8601, UTC
    size: int  # bytes
    sha256: str
    migrations: dict[str, list[str]]
    row_counts: dict[str, int]
    tables: list[str]
    key_fingerprints: list[str]  # crypto.key_fingerprints() when the backup was taken
    format: int = field(default=FORMAT)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        try:
            data = json.loads(path.read_text())
            manifest = cls(**data)
        except FileNotFoundError:
            raise BackupError(f"No manifest beside the backup: {path} is missing") from None
        except (ValueError, TypeError) as exc:
            raise BackupError(f"{path} is not a backup manifest: {exc}") from None
        if manifest.format != FORMAT:
            raise BackupError(f"{path} has manifest format {manifest.format}, not {FORMAT}")
        return manifest


def manifest_path(archive: Path) -> Path:
    return archive.with_name(archive.name + MANIFEST_SUFFIX)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_archive(archive: Path, manifest: Manifest) -> None:
    """Refuse an archive that is not byte for byte the one the manifest describes."""
    if not archive.is_file():
        raise BackupError(f"Backup file not found: {archive}")
    size = archive.stat().st_size
    if size != manifest.size:
        raise BackupError(f"Size mismatch: {archive} has {size} bytes, manifest {manifest.size}")
    actual = sha256_of(archive)
    if actual != manifest.sha256:
        raise BackupError(
            f"SHA-256 mismatch: {archive} hashes to {actual}, manifest says {manifest.sha256}; "
            "the file changed after the backup was written"
        )


def project_tables() -> list[str]:
    """Tables of the apps that live in this repository (not Django's or third parties')."""
    tables: set[str] = set()
    for config in apps.get_app_configs():
        if not Path(config.path).is_relative_to(settings.WEBAPP_DIR):
            continue
        for model in config.get_models(include_auto_created=True):
            if model._meta.managed and not model._meta.proxy:
                tables.add(model._meta.db_table)
    return sorted(tables)


def _latest_applied(
    applied: Iterable[tuple[str, str]], graph: MigrationGraph
) -> dict[str, list[str]]:
    done = set(applied)
    latest: dict[str, list[str]] = defaultdict(list)
    for app_label, name in sorted(done):
        node = graph.node_map.get((app_label, name))
        children = node.children if node is not None else set()
        # Latest = no applied successor in the same app; a merge can leave two.
        if not any(c.key[0] == app_label and c.key in done for c in children):
            latest[app_label].append(name)
    return dict(latest)


def read_state(connection: BaseDatabaseWrapper, tables: Iterable[str]) -> DatabaseState:
    """Read the state through `connection`, inside whatever transaction it holds."""
    with connection.cursor() as cursor:
        present = sorted(connection.introspection.table_names(cursor))
        counts: dict[str, int] = {}
        for table in tables:
            if table in present:
                cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608 (quoted identifier)
                counts[table] = int(cursor.fetchone()[0])
        applied: list[tuple[str, str]] = []
        if MIGRATIONS_TABLE in present:
            # Raw SQL rather than MigrationRecorder: its ORM query needs the connection to
            # be registered under an alias, and a backup's copy or snapshot is not.
            cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(MIGRATIONS_TABLE)}")  # noqa: S608
            applied = [(str(app), str(name)) for app, name in cursor.fetchall()]
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    return DatabaseState(_latest_applied(applied, graph), counts, present)


def compare(manifest: Manifest, state: DatabaseState) -> list[Finding]:
    """The restored database against the manifest: migration state and row counts."""
    results: list[Finding] = []
    if state.migrations == manifest.migrations:
        results.append(
            Finding("Migration state", "ok", f"{len(state.migrations)} app(s) as backed up")
        )
    else:
        apps_differing = sorted(
            label
            for label in set(state.migrations) | set(manifest.migrations)
            if state.migrations.get(label) != manifest.migrations.get(label)
        )
        detail = "; ".join(
            f"{label}: {state.migrations.get(label)} != {manifest.migrations.get(label)}"
            for label in apps_differing
        )
        results.append(Finding("Migration state", "fail", f"differs from the backup: {detail}"))
    wrong = {
        table: (state.row_counts.get(table), expected)
        for table, expected in manifest.row_counts.items()
        if state.row_counts.get(table) != expected
    }
    if wrong:
        detail = "; ".join(
            f"{table}: {'missing' if got is None else got} != {expected}"
            for table, (got, expected) in sorted(wrong.items())
        )
        results.append(Finding("Row counts", "fail", f"differ from the backup: {detail}"))
    else:
        total = sum(manifest.row_counts.values())
        detail = f"{len(manifest.row_counts)} table(s), {total} row(s) as backed up"
        results.append(Finding("Row counts", "ok", detail))
    return results
