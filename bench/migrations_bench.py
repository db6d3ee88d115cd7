"""Benchmark the SumUp migrations (accounts 0003-0005) on a large PostgreSQL table.

Run:  .venv/bin/python bench/migrations_bench.py [--rows N | --quick]
(default 1,000,000 artists; --quick: 20,000, for a CI smoke run).

What it does, on a fresh database `bench_migrations` that it creates and drops at the end
(also when a step fails):

1. `migrate accounts 0002_emailverificationtoken`, then COPY N users and N artist
   profiles and VACUUM ANALYZE them (a settled production table: hint bits, statistics).
2. Times `migrate accounts 0003`, `0004` and `0005`, each through Django's own `migrate`
   command (in process, `call_command`: Python start-up and `django.setup()` are left
   out; the migration loader and the post_migrate handlers are in).
3. Baseline, measured in the same run: the naive alternative to 0004, one
   `UPDATE accounts_artistprofile SET sumup_connection_status = 'not_connected',
   <stale token columns> = NULL` over all N rows. It runs on a file copy of the database
   taken right after 0003 (`CREATE DATABASE ... TEMPLATE`), so it starts from exactly the
   table 0004 starts from. Every timed phase starts after a CHECKPOINT.
4. Rolls back to 0002 (the artist count must still be N), then migrates forward to the
   latest migration again.

Locks are measured two ways.

- From inside: a Django execute_wrapper on the migrating connection times every
  transaction in which it holds a lock on `accounts_artistprofile` that blocks writers
  (ALTER TABLE other than VALIDATE CONSTRAINT, UPDATE, ...), from that statement's start
  to the end of its COMMIT (a `transaction.on_commit` hook). The baseline's is its one
  UPDATE statement (autocommit).
- As other sessions see it: during each phase three threads, each on its own connection,
  stand in for the live site. Every ~20 ms one updates a random artist row
  (`UPDATE ... SET bio = bio WHERE id = %s`), one reads a random artist row
  (`SELECT ... LIMIT 1`), and one samples `pg_locks` for the table lock modes the
  migrating session holds.

How to read the table:

- wall s: the phase's wall time.
- blocking ms: the longest transaction holding a writer-blocking lock (see above). For
  0004 that is its longest batch: the longest a writer to one row of that batch could wait.
- write / read probe ms: the slowest single-row UPDATE / SELECT another session saw, the
  longest lock as the site would feel it; compare with the "idle" row (noise floor). A lock
  shorter than the probe interval can fall between two probes, and a random row is rarely
  in the batch 0004 is updating (batch size / N of them), so 0004's probe figure is typical,
  its blocking figure the worst case.
- rows: rows updated when the phase updates rows, otherwise rows in the table.
- locks: table lock modes seen held by the migrating session (sampled every ~20 ms, so a
  lock of a few milliseconds can be missed).

Below the table: 0004's batches, and the ratios of 0004 to the single UPDATE (wall time,
probe-visible blocking, worst-case blocking). The figures also go to
bench/results/migrations.json. Exits non-zero when any step or check fails.
"""

import argparse
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import django
import psycopg
from django.core.management import call_command
from django.db import connection, connections, transaction
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parent
# Run as a script, only bench/ is on sys.path; the shared helpers live in bench.common.
sys.path.insert(0, str(BENCH_DIR.parent))

from bench.common import (  # noqa: E402
    DEFAULT_SERVER,
    WEBAPP_DIR,
    BenchError,
    admin_execute,
    check,
    create_database,
    drop_database,
    log,
    production_stand_ins,
    timed,
    write_json,
)

RESULTS_FILE = BENCH_DIR / "results" / "migrations.json"

DB_NAME = "bench_migrations"
BASELINE_DB_NAME = "bench_migrations_baseline"
DEFAULT_ROWS = 1_000_000
QUICK_ROWS = 20_000

PROBE_INTERVAL_S = 0.020
PROBE_LEAD_S = 0.2  # probes run this long before and after each phase
IDLE_S = 2.0

TABLE = "accounts_artistprofile"
BEFORE = "0002_emailverificationtoken"
ADD_COLUMNS = "0003_add_sumup_oauth_fields"
BACKFILL = "0004_migrate_existing_artists_to_sumup"
FINALIZE = "0005_finalize_sumup_connection_status"
SUMUP_COLUMNS = 8

UPDATE_PROBE = f"UPDATE {TABLE} SET bio = bio WHERE id = %s"
SELECT_PROBE = f"SELECT id, display_name FROM {TABLE} WHERE id = %s LIMIT 1"
LOCK_SAMPLE = (
    "SELECT mode FROM pg_locks WHERE locktype = 'relation' AND granted"
    " AND pid = %s AND relation = to_regclass(%s)"
)
BIO = (
    "Singer-songwriter from St Helier playing folk and acoustic sets in pubs, "
    "festivals and private events across the island."
)
USER_COPY = (
    "COPY accounts_user (id, password, is_superuser, username, first_name, last_name, email,"
    " is_staff, is_active, date_joined, user_type, phone, email_verified) FROM STDIN"
)
ARTIST_COPY = (
    f"COPY {TABLE} (id, user_id, display_name, bio, business_name, is_approved, created_at,"
    " updated_at) FROM STDIN"
)


# --- databases --------------------------------------------------------------------------


def db_url(server: str, name: str) -> str:
    return f"{server}/{name}"


def drop_bench_databases(server: str) -> bool:
    """Drop this run's databases; False (after saying why) when one could not be dropped."""
    connections.close_all()
    dropped = True
    for name in (BASELINE_DB_NAME, DB_NAME):
        try:
            drop_database(server, name)
        except psycopg.Error as exc:
            log(f"could not drop {name}: {exc}")
            dropped = False
    return dropped


def checkpoint(server: str) -> None:
    admin_execute(server, sql.SQL("CHECKPOINT"))


def scalar(conninfo: str, query: str, params: Sequence[Any] = ()) -> Any:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def count(conninfo: str, table: str = TABLE, where: str = "TRUE") -> int:
    return int(scalar(conninfo, f"SELECT count(*) FROM {table} WHERE {where}"))


def sumup_columns(conninfo: str) -> dict[str, str]:
    """The artist table's sumup_* columns, each with its is_nullable ("YES"/"NO")."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns"
            " WHERE table_name = %s AND column_name LIKE 'sumup\\_%%'",
            (TABLE,),
        ).fetchall()
    return {name: nullable for name, nullable in rows}


def user_row(i: int, now: datetime) -> tuple[Any, ...]:
    name = f"artist{i}"
    return (i, "!", False, name, "", "", f"{name}@bench.test", False, True, now, "artist", "", True)


def load_rows(conninfo: str, rows: int) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(USER_COPY) as copy:
            for i in range(1, rows + 1):
                copy.write_row(user_row(i, now))
        with cur.copy(ARTIST_COPY) as copy:
            for i in range(1, rows + 1):
                copy.write_row((i, i, f"Artist {i}", BIO, f"Studio {i}", True, now, now))
        for table in ("accounts_user", TABLE):
            cur.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (table, rows))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) accounts_user, {TABLE}")


# --- Django -----------------------------------------------------------------------------


def setup_django(database_url: str, rows: int) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "events.settings"
    os.environ["DEBUG"] = "false"  # no query log: time the migrations as production runs them
    # 0004 fills every row inside the migration, in batches, as it does up to this many
    # rows; above it, it leaves them to the workers (bench/backfill_bench.py measures that).
    os.environ["BACKFILL_INLINE_MAX_ROWS"] = str(rows)
    # What production requires; the migrations call no SumUp and encrypt no token.
    for name, value in production_stand_ins("bench-migrations").items():
        os.environ.setdefault(name, value)
    sys.path.insert(0, str(WEBAPP_DIR))
    django.setup()


def migrate(target: str | None = None) -> None:
    args = ["accounts", *([target] if target else [])]
    out = StringIO()
    try:
        call_command("migrate", *args, interactive=False, verbosity=1, stdout=out, stderr=out)
    except Exception as exc:
        raise BenchError(f"migrate {' '.join(args)} failed: {exc!r}\n{out.getvalue()}") from exc


def django_backend_pid() -> int:
    connection.ensure_connection()
    return int(connection.connection.info.backend_pid)


# --- lock holds seen from the migrating session -----------------------------------------


def blocks_writers(sql_text: str) -> bool:
    """Whether the statement takes a lock on TABLE that stops other sessions writing it."""
    if TABLE not in sql_text:
        return False
    head = sql_text.lstrip().upper()
    if head.startswith(("UPDATE", "DELETE", "INSERT", "TRUNCATE")):
        return True
    if "VALIDATE CONSTRAINT" in head or "CONCURRENTLY" in head:
        return False  # SHARE UPDATE EXCLUSIVE: reads and writes go on
    return head.startswith(("ALTER", "DROP", "CREATE"))


@dataclass
class Statement:
    sql: str
    started: float
    ended: float
    rowcount: int


@dataclass
class LockHold:
    """One transaction holding a writer-blocking lock on TABLE, to the end of its COMMIT."""

    started: float
    ended: float = 0.0
    statements: list[Statement] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000

    @property
    def rows_updated(self) -> int:
        return sum(
            max(s.rowcount, 0) for s in self.statements if s.sql.lstrip()[:6].upper() == "UPDATE"
        )


@dataclass
class LockLog:
    """A Django execute_wrapper recording the migrating connection's LockHolds."""

    holds: list[LockHold] = field(default_factory=list)
    open_hold: LockHold | None = None

    def __call__(
        self,
        execute: Callable[..., Any],
        sql_text: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        result = execute(sql_text, params, many, context)
        if blocks_writers(sql_text):
            rowcount = getattr(context.get("cursor"), "rowcount", -1)
            statement = Statement(sql_text, started, time.perf_counter(), rowcount)
            db = context["connection"]
            self.record(statement, in_transaction=db.in_atomic_block, using=db.alias)
        return result

    def record(self, statement: Statement, *, in_transaction: bool, using: str = "default") -> None:
        if not in_transaction:  # autocommit: the statement is the whole transaction
            self.holds.append(LockHold(statement.started, statement.ended, [statement]))
            return
        if self.open_hold is None:
            self.open_hold = LockHold(statement.started)
            transaction.on_commit(self.close_hold, using=using)
        self.open_hold.statements.append(statement)

    def close_hold(self) -> None:
        if self.open_hold is not None:
            self.open_hold.ended = time.perf_counter()
            self.holds.append(self.open_hold)
            self.open_hold = None

    @property
    def longest_ms(self) -> float:
        return max((hold.ms for hold in self.holds), default=0.0)

    @property
    def rows_updated(self) -> int:
        return sum(hold.rows_updated for hold in self.holds)


# --- lock holds seen by other sessions ----------------------------------------------------


@dataclass
class ProbeStats:
    samples: int = 0
    max_ms: float = 0.0
    total_ms: float = 0.0

    def add(self, ms: float) -> None:
        self.samples += 1
        self.max_ms = max(self.max_ms, ms)
        self.total_ms += ms

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.samples if self.samples else 0.0


ProbeAction = Callable[[psycopg.Connection[Any]], None]


class Probe(threading.Thread):
    """Runs `action` on its own autocommit connection every `interval`, timing each run."""

    def __init__(self, name: str, conninfo: str, action: ProbeAction, interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self.conninfo = conninfo
        self.action = action
        self.interval = interval
        self.stats = ProbeStats()
        self.error: Exception | None = None
        self.ready = threading.Event()
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True, prepare_threshold=None) as conn:
                self.ready.set()
                while not self.halt.is_set():
                    started = time.perf_counter()
                    self.action(conn)
                    self.stats.add((time.perf_counter() - started) * 1000)
                    self.halt.wait(self.interval)
        except Exception as exc:
            self.error = exc
        finally:
            self.ready.set()


class ProbeSet:
    """The write, read and lock-sampling probes around one phase."""

    def __init__(self, conninfo: str, rows: int, pid: int, interval: float) -> None:
        self.lock_modes: set[str] = set()

        def write(conn: psycopg.Connection[Any]) -> None:
            conn.execute(UPDATE_PROBE, (random.randint(1, rows),))

        def read(conn: psycopg.Connection[Any]) -> None:
            conn.execute(SELECT_PROBE, (random.randint(1, rows),)).fetchone()

        def locks(conn: psycopg.Connection[Any]) -> None:
            self.lock_modes.update(row[0] for row in conn.execute(LOCK_SAMPLE, (pid, TABLE)))

        self.write = Probe("write-probe", conninfo, write, interval)
        self.read = Probe("read-probe", conninfo, read, interval)
        self.probes = (self.write, self.read, Probe("lock-sampler", conninfo, locks, interval))

    def __enter__(self) -> Self:
        for probe in self.probes:
            probe.start()
        for probe in self.probes:
            probe.ready.wait()
        self.raise_errors()
        time.sleep(PROBE_LEAD_S)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            time.sleep(PROBE_LEAD_S)
        for probe in self.probes:
            probe.halt.set()
        for probe in self.probes:
            probe.join()
        if exc is None:
            self.raise_errors()

    def raise_errors(self) -> None:
        for probe in self.probes:
            if probe.error is not None:
                raise BenchError(f"{probe.name} failed: {probe.error!r}") from probe.error


# --- phases -----------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    wall_seconds: float
    rows: int
    blocking_ms: float
    blocking_transactions: int
    write_probe_max_ms: float
    read_probe_max_ms: float
    write_probe_mean_ms: float
    probe_samples: int
    lock_modes: list[str]


@dataclass
class Phase:
    """What a phase runs (`work` logs its lock holds in the LockLog it is given) and where."""

    name: str
    conninfo: str
    rows: int
    pid: int
    work: Callable[[LockLog], None]


def run_phase(phase: Phase, interval: float) -> tuple[PhaseResult, LockLog]:
    log(f"phase: {phase.name}")
    lock_log = LockLog()
    with ProbeSet(phase.conninfo, phase.rows, phase.pid, interval) as probes:
        started = time.perf_counter()
        phase.work(lock_log)
        wall = time.perf_counter() - started
    result = PhaseResult(
        name=phase.name,
        wall_seconds=wall,
        rows=lock_log.rows_updated or count(phase.conninfo),
        blocking_ms=lock_log.longest_ms,
        blocking_transactions=len(lock_log.holds),
        write_probe_max_ms=probes.write.stats.max_ms,
        read_probe_max_ms=probes.read.stats.max_ms,
        write_probe_mean_ms=probes.write.stats.mean_ms,
        probe_samples=probes.write.stats.samples,
        lock_modes=sorted(probes.lock_modes),
    )
    blocking, probe = result.blocking_ms, result.write_probe_max_ms
    log(f"  {wall:.2f} s, blocking {blocking:.1f} ms, write probe {probe:.1f} ms")
    return result, lock_log


def migrate_phase(name: str, conninfo: str, rows: int, target: str | None) -> Phase:
    def work(lock_log: LockLog) -> None:
        with connection.execute_wrapper(lock_log):
            migrate(target)

    return Phase(name, conninfo, rows, django_backend_pid(), work)


def idle_phase(conninfo: str, rows: int) -> Phase:
    return Phase("idle (noise floor)", conninfo, rows, 0, lambda _: time.sleep(IDLE_S))


def baseline_sql() -> str:
    from accounts.sumup.status_backfill import STALE_TOKEN_COLUMNS  # needs django.setup()

    nulls = ", ".join(f"{column} = NULL" for column in STALE_TOKEN_COLUMNS)
    return f"UPDATE {TABLE} SET sumup_connection_status = 'not_connected', {nulls}"


def run_baseline(server: str, rows: int, interval: float) -> PhaseResult:
    """The single UPDATE, on a copy of the database as it stands after 0003."""
    connections.close_all()  # a template database must have no other sessions
    create_database(server, BASELINE_DB_NAME, template=DB_NAME)
    conninfo = db_url(server, BASELINE_DB_NAME)
    try:
        checkpoint(server)
        with psycopg.connect(conninfo, autocommit=True) as conn:

            def work(lock_log: LockLog) -> None:
                query = baseline_sql()
                started = time.perf_counter()
                updated = conn.execute(query).rowcount
                statement = Statement(query, started, time.perf_counter(), updated)
                lock_log.record(statement, in_transaction=False)

            phase = Phase("single UPDATE (baseline)", conninfo, rows, conn.info.backend_pid, work)
            result, _ = run_phase(phase, interval)
        check(result.rows == rows, f"baseline UPDATE changed {result.rows} rows, not {rows}")
        return result
    finally:
        drop_database(server, BASELINE_DB_NAME)


# --- checks -----------------------------------------------------------------------------


def expect_columns_added(conninfo: str, rows: int) -> str:
    columns = sumup_columns(conninfo)
    check(len(columns) == SUMUP_COLUMNS, f"0003 added {len(columns)} sumup_ columns")
    check(set(columns.values()) == {"YES"}, "0003: a sumup_ column is NOT NULL")
    check(count(conninfo, where="sumup_connection_status IS NULL") == rows, "0003: status set")
    return f"{SUMUP_COLUMNS} nullable columns, every status NULL"


def expect_backfilled(conninfo: str, rows: int) -> str:
    filled = count(conninfo, where="sumup_connection_status = 'not_connected'")
    check(filled == rows, f"{filled} of {rows} artists are not_connected")
    check(count(conninfo, where="sumup_connection_status IS NULL") == 0, "NULL status left")
    return f"{rows:,} artists not_connected"


def expect_not_null(conninfo: str, rows: int) -> str:
    nullable = sumup_columns(conninfo).get("sumup_connection_status")
    check(nullable == "NO", f"sumup_connection_status is_nullable={nullable}")
    return f"status NOT NULL, {expect_backfilled(conninfo, rows)}"


def expect_latest(conninfo: str, rows: int) -> str:
    applied = scalar(conninfo, "SELECT max(name) FROM django_migrations WHERE app = 'accounts'")
    return f"at {applied}, {expect_not_null(conninfo, rows)}"


def expect_rolled_back(conninfo: str, rows: int) -> str:
    check(count(conninfo) == rows, f"{count(conninfo)} artists left, not {rows}")
    check(count(conninfo, "accounts_user") == rows, "the user count changed")
    check(not sumup_columns(conninfo), "sumup_ columns remain")
    return f"{rows:,} artists kept, sumup_ columns gone"


# (name, migrate target, check run after it)
STEPS: tuple[tuple[str, str | None, Callable[[str, int], str]], ...] = (
    ("migrate 0003 (add columns)", ADD_COLUMNS, expect_columns_added),
    ("migrate 0004 (batched)", BACKFILL, expect_backfilled),
    ("migrate 0005 (0006, 0007, NOT NULL)", FINALIZE, expect_not_null),
    ("rollback to 0002", BEFORE, expect_rolled_back),
    ("forward to latest", None, expect_latest),
)


# --- the run ----------------------------------------------------------------------------


@dataclass
class BackfillStats:
    batches: int
    rows_updated: int
    longest_batch_ms: float
    median_batch_ms: float


@dataclass
class BenchResult:
    rows: int
    batch_size: int
    probe_interval_ms: float
    postgres: str
    started_at: str
    setup_seconds: dict[str, float] = field(default_factory=dict)
    phases: list[PhaseResult] = field(default_factory=list)
    backfill: BackfillStats | None = None
    ratios: dict[str, float | None] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    def phase(self, name: str) -> PhaseResult:
        return next(phase for phase in self.phases if phase.name == name)


def prepare(server: str, conninfo: str, result: BenchResult) -> None:
    create_database(server, DB_NAME)
    with timed(result.setup_seconds, "migrate_to_0002"):
        migrate(BEFORE)
    log(f"loading {result.rows:,} users and artist profiles")
    with timed(result.setup_seconds, "copy_and_vacuum"):
        load_rows(conninfo, result.rows)
    check(count(conninfo, "accounts_user") == result.rows, "user count after COPY is off")
    check(count(conninfo) == result.rows, "artist count after COPY is off")
    result.checks.append(f"loaded {result.rows:,} users and artists")


def backfill_stats(lock_log: LockLog) -> BackfillStats:
    batches = [hold.ms for hold in lock_log.holds]
    check(bool(batches), "0004 updated nothing")
    return BackfillStats(
        batches=len(batches),
        rows_updated=lock_log.rows_updated,
        longest_batch_ms=max(batches),
        median_batch_ms=statistics.median(batches),
    )


def run_step(server: str, result: BenchResult, step: int, interval: float) -> LockLog:
    name, target, expect = STEPS[step]
    conninfo = db_url(server, DB_NAME)
    checkpoint(server)
    phase, lock_log = run_phase(migrate_phase(name, conninfo, result.rows, target), interval)
    result.phases.append(phase)
    try:
        result.checks.append(f"{name}: {expect(conninfo, result.rows)}")
    except BenchError as exc:
        raise BenchError(f"{name}: {exc}") from exc
    return lock_log


def run_bench(server: str, rows: int, interval: float) -> BenchResult:
    conninfo = db_url(server, DB_NAME)
    result = BenchResult(
        rows=rows,
        batch_size=batch_size(),
        probe_interval_ms=interval * 1000,
        postgres=str(scalar(db_url(server, "postgres"), "SHOW server_version")),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    prepare(server, conninfo, result)
    checkpoint(server)
    result.phases.append(run_phase(idle_phase(conninfo, rows), interval)[0])
    run_step(server, result, 0, interval)
    result.phases.append(run_baseline(server, rows, interval))
    result.checks.append(f"baseline: one UPDATE changed {rows:,} rows (on a copy)")
    result.backfill = backfill_stats(run_step(server, result, 1, interval))
    for step in range(2, len(STEPS)):
        run_step(server, result, step, interval)
    result.ratios = ratios(result.phase(STEPS[1][0]), result.phase("single UPDATE (baseline)"))
    return result


def batch_size() -> int:
    """The size of 0004's batches when it runs inline (backfills.data_migrations)."""
    from django.conf import settings  # configured by setup_django()

    return int(settings.BACKFILL_BATCH_SIZE)


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def ratios(backfill: PhaseResult, baseline: PhaseResult) -> dict[str, float | None]:
    return {
        "wall_0004_over_single_update": ratio(backfill.wall_seconds, baseline.wall_seconds),
        "probe_blocking_0004_over_single_update": ratio(
            backfill.write_probe_max_ms, baseline.write_probe_max_ms
        ),
        "worst_blocking_0004_over_single_update": ratio(backfill.blocking_ms, baseline.blocking_ms),
    }


# --- report -----------------------------------------------------------------------------


RATIO_LINES = (
    ("wall time", "wall_0004_over_single_update"),
    ("longest probe-visible block (write probe)", "probe_blocking_0004_over_single_update"),
    ("worst-case block (longest batch / the UPDATE)", "worst_blocking_0004_over_single_update"),
)
HEADER = (
    f"{'phase':<27} {'wall s':>8} {'blocking ms':>12} {'write probe':>12} {'read probe':>11}"
    f" {'rows':>10}  locks held (sampled)"
)


def format_ratio(value: float | None) -> str:
    return "      n/a" if value is None else f"{value:9.4f}x"


def phase_line(phase: PhaseResult) -> str:
    locks = ", ".join(phase.lock_modes) or "-"
    return (
        f"{phase.name:<27} {phase.wall_seconds:>8.3f} {phase.blocking_ms:>12.1f}"
        f" {phase.write_probe_max_ms:>12.1f} {phase.read_probe_max_ms:>11.1f}"
        f" {phase.rows:>10,}  {locks}"
    )


def backfill_line(result: BenchResult) -> str:
    stats = result.backfill
    if stats is None:
        return "0004: no batches"
    return (
        f"0004: {stats.batches} batches of up to {result.batch_size:,} rows, "
        f"{stats.rows_updated:,} rows updated; batch transaction (UPDATE to end of COMMIT) "
        f"longest {stats.longest_batch_ms:.1f} ms, median {stats.median_batch_ms:.1f} ms"
    )


def render(result: BenchResult) -> str:
    return "\n".join(
        [
            f"SumUp migrations on {result.rows:,} artists (PostgreSQL {result.postgres}); "
            f"probes every {result.probe_interval_ms:.0f} ms, max latency in ms",
            "",
            HEADER,
            "-" * len(HEADER),
            *(phase_line(phase) for phase in result.phases),
            "",
            backfill_line(result),
            "",
            "0004 / single UPDATE:",
            *(f"  {label:<46} {format_ratio(result.ratios[key])}" for label, key in RATIO_LINES),
            "",
            "setup: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.setup_seconds.items()),
            "checks:",
            *(f"  {line}" for line in result.checks),
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="artists to load")
    size.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows (CI smoke)")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument(
        "--probe-interval-ms", type=float, default=PROBE_INTERVAL_S * 1000, help="probe period"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = QUICK_ROWS
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server = args.server.rstrip("/")
    setup_django(db_url(server, DB_NAME), args.rows)
    try:
        result = run_bench(server, args.rows, args.probe_interval_ms / 1000)
    except (BenchError, psycopg.Error) as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        dropped = drop_bench_databases(server)
    if not dropped:
        return 1
    write_json(RESULTS_FILE, asdict(result))
    print(render(result))
    print(f"\nwritten: {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
