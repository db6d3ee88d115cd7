"""Benchmark the SumUp status backfill as the Celery workers run it, on a large table.

Run:  .venv/bin/python bench/backfill_bench.py [--rows N | --quick] [--rate R]
(default 1,000,000 artists, a few minutes; --quick: 50,000, well under a minute, CI smoke).

One run, on a fresh PostgreSQL database `bench_backfill`, its file copies
`bench_backfill_floor*` / `bench_backfill_naive`, and Redis database 7; all removed again
at the end, also when a step fails or the run is interrupted (SIGINT/SIGTERM):

1. Setup as in bench/migrations_bench.py: `migrate accounts 0002`, COPY N users and N
   artists, VACUUM ANALYZE, `migrate accounts 0003` (every status NULL).
2. `gunicorn events.wsgi` (2 workers, as in the Procfile) on a loopback port, logged in
   as a legacy artist through the login form. The dashboard's answer on the 0003 schema is
   recorded as it is: the current code also reads columns that only 0006/0007 add, so to
   measure the page at all the bench then adds those (catalog-only ADD COLUMNs, status
   untouched) and says so. Then three file copies of the table state (TEMPLATE).
3. The floor: one `UPDATE ... WHERE sumup_connection_status IS NULL` over all N rows on a
   copy, quiet. The naive loop, `for p in ArtistProfile.objects.filter(status NULL)[:S]:
   p.save()` (the historical model a data migration gets, autocommit) on another copy,
   extrapolated to N. Dashboard idle: steady requests (default 50/s) for 20 s, sent from
   a client process of its own in every phase (the driver's own work would delay them).
4. The floor again, on the third copy, with the same dashboard load beside it, right
   before the backfill: the wall-time target compares the two measured in like conditions.
5. 2 `celery -A jobs worker` processes start (the Procfile's command line) and are
   ready, as on a running site; their boot time is shown, not counted. Then `migrate
   accounts 0004` in process with the default BACKFILL_INLINE_MAX_ROWS (100,000; up to
   that many rows it is set to N / 5, so that the workers still get the run): it must
   return at once with a pending run that has every row left to do, and wake the workers.
   The dashboard load runs until the run ends, and pg_stat_activity is sampled every
   10 ms for the age of each batch transaction (to the end of its COMMIT).

Targets, printed PASS/FAIL beside the figures and not enforced (a missed target still
exits 0): wall time from the migration's end to the run's `succeeded` <= 1.5 x the floor;
the longest batch transaction <= 200 ms (the ledger's `ms`, and as the server saw it);
dashboard p99 during the backfill <= 2 x idle. The exit status is 1 when a step fails, the
run does not succeed, or a row is left NULL. Below the table: where the time went (the
ledger's timed part vs the time between batches, the batch-size ramp) and how busy the
machine was in each phase; a shared 2-CPU machine makes single runs noisy. The figures,
with every batch's rows / ms / gap, also go to bench/results/backfill.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import django
import psycopg
import redis
import requests

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
# Run as a script, only bench/ is on sys.path; the shared helpers live in bench.common, and
# the artist table and its probes in bench.migrations_bench.
sys.path.insert(0, str(PROJECT_DIR))

from bench.common import (  # noqa: E402
    DEFAULT_SERVER,
    VENV_BIN,
    WEBAPP_DIR,
    BenchError,
    check,
    create_database,
    drop_database,
    free_port,
    log,
    on_terminate,
    production_stand_ins,
    stop_process_groups,
    timed,
    write_json,
)
from bench.migrations_bench import (  # noqa: E402
    ADD_COLUMNS,
    BEFORE,
    TABLE,
    Probe,
    checkpoint,
    count,
    load_rows,
    scalar,
)

RESULTS_FILE = BENCH_DIR / "results" / "backfill.json"

DB_NAME = "bench_backfill"
QUIET_FLOOR_DB = "bench_backfill_floor_quiet"
FLOOR_DB = "bench_backfill_floor"
NAIVE_DB = "bench_backfill_naive"
COPIES = (QUIET_FLOOR_DB, FLOOR_DB, NAIVE_DB)
DB_NAMES = (DB_NAME, *COPIES)
REDIS_URL = "redis://127.0.0.1:6379/7"  # broker, results and cache; flushed before and after
APP_NAME = "bench_backfill"  # application_name of this script's own sessions

DEFAULT_ROWS = 1_000_000
QUICK_ROWS = 50_000
DEFAULT_INLINE_MAX_ROWS = 100_000  # the setting's default
SMALL_RUN_INLINE_SHARE = 5  # up to the default, the limit is rows / 5: 0004 still hands over
RECORD = "0004_migrate_existing_artists_to_sumup"
BACKFILL = "sumup_connection_status"
ACTIVE = ("pending", "running", "paused", "cancelling")

WORKERS = 2
WORKER_CONCURRENCY = 3  # the Procfile's default
WEB_WORKERS = 2  # the Procfile's default WEB_CONCURRENCY
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 900.0
WORKER_START_TIMEOUT_S = 60.0

# Requests per second. A p99 is only a figure over a few hundred requests: at 50/s, a
# 5-second backfill gets about 250 (at 20/s its p99 was its slowest single request).
DASHBOARD_RATE = 50.0
CLIENT_THREADS = 8  # enough that a slow answer never delays the next request
REQUEST_TIMEOUT_S = 10.0
IDLE_S, QUICK_IDLE_S = 20.0, 4.0
SLOWEST_SHOWN = 5  # the slowest dashboard requests listed, with when they were sent
WARM_UP_S = 2.0  # uncounted dashboard requests before the idle measurement
NAIVE_SAMPLE, QUICK_NAIVE_SAMPLE = 5_000, 1_000
XACT_SAMPLE_S = 0.010
POLL_S = 0.05
LONG_GAP_MS = 100.0  # a pause between batches this long is a slice handover or a stall
RAMP_DONE = 0.9  # of BACKFILL_TARGET_BATCH_MS: the batch size has grown into the target

WALL_OVER_FLOOR_MAX = 1.5
LONGEST_BATCH_MS_MAX = 200.0
DASHBOARD_P99_RATIO_MAX = 2.0

ARTIST_PASSWORD = "bench-artist-password"  # noqa: S105 (a throwaway user in a throwaway DB)
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
STATUS_SPAN = re.compile(r'id="sumup-status">([^<]*)<')
NOTICE = re.compile(r'<p class="muted">(.*?)</p>', re.DOTALL)
# A worker logs in the web's format (jobs.celery): "<asctime> INFO celery.apps.worker ...".
READY_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO celery\.apps\.worker \S+ ready\.$", re.MULTILINE
)
ERROR_LINE = re.compile(r"^[\w.]+(?:Error|Exception): .+$", re.MULTILINE)

XACT_SAMPLE = (
    "SELECT pid, xact_start, extract(epoch FROM clock_timestamp() - xact_start) * 1000, query"
    " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND xact_start IS NOT NULL AND application_name NOT LIKE 'bench%'"
)
BATCH_UPDATE = f'UPDATE "{TABLE}"'
RUN_ROW = (
    "SELECT status, started_at, finished_at, rows_done, batches_done, batch_size,"
    " recent_batches, generation, last_error FROM backfills_backfillrun WHERE id = %s"
)
LEDGER = "SELECT low, high, rows, ms, at FROM backfills_backfillbatch WHERE run_id = %s ORDER BY id"


# --- environment, databases, processes -------------------------------------------------


def configure_environment(server: str, inline_max_rows: int | None) -> None:
    """Settings for this process and, inherited, for the workers and the web server."""
    for name in [name for name in os.environ if name.startswith("BACKFILL_")]:
        del os.environ[name]  # the defaults are what is measured
    if inline_max_rows is not None:
        os.environ["BACKFILL_INLINE_MAX_ROWS"] = str(inline_max_rows)
    # What production requires (DEBUG off: no query log, secure cookies); nothing here
    # calls SumUp or holds a token.
    os.environ.update(production_stand_ins("bench-backfill"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="events.settings",
        DATABASE_URL=f"{server}/{DB_NAME}",
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=REDIS_URL,
        CELERY_RESULT_BACKEND=REDIS_URL,
        # Plain http on loopback, where production's proxy would have ended TLS.
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(WEBAPP_DIR))
    django.setup()


def conninfo(server: str, name: str = DB_NAME, app: str = APP_NAME) -> str:
    return f"{server}/{name}?application_name={app}"


def drop_databases(server: str) -> None:
    from django.db import connections

    connections.close_all()
    for name in DB_NAMES:
        try:
            drop_database(server, name)
        except psycopg.Error as exc:
            log(f"could not drop {name}: {exc}")


def flush_redis() -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()


def migrate(app: str, target: str | None = None) -> str:
    """Django's own migrate, in process; what it printed (0004 prints with print())."""
    from django.core.management import call_command

    args = [app, *([target] if target else [])]
    out = StringIO()
    try:
        with contextlib.redirect_stdout(out):
            call_command("migrate", *args, interactive=False, verbosity=1, stdout=out, stderr=out)
    except Exception as exc:
        raise BenchError(f"migrate {' '.join(args)} failed: {exc!r}\n{out.getvalue()}") from exc
    return out.getvalue()


def start_process(args: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            args,
            cwd=PROJECT_DIR,
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def check_alive(processes: Sequence[subprocess.Popen[bytes]], what: str, logs: Path) -> None:
    for process in processes:
        if process.poll() is not None:
            tails = "\n".join(p.read_text(errors="replace")[-2000:] for p in logs.glob("*.log"))
            raise BenchError(f"{what} {process.pid} exited with {process.returncode}\n{tails}")


# --- machine load ------------------------------------------------------------------------


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Load:
    """How busy the whole machine was during a phase (this benchmark included)."""

    cpu_busy_percent: float
    load_average_1m: float


@contextlib.contextmanager
def measure_load(into: dict[str, Load], phase: str) -> Iterator[None]:
    busy, total = cpu_times()
    yield
    busy_after, total_after = cpu_times()
    percent = 100 * (busy_after - busy) / max(1.0, total_after - total)
    into[phase] = Load(round(percent, 1), os.getloadavg()[0])


# --- the dashboard -----------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    at: float  # epoch seconds when the request was sent
    ms: float
    status: int  # 0: no answer (connection error or timeout)


@dataclass
class Latency:
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]

    @classmethod
    def of(cls, hits: Sequence[Hit]) -> Latency:
        times = sorted(hit.ms for hit in hits)
        return cls(
            requests=len(hits),
            errors=sum(hit.status != 200 for hit in hits),
            p50_ms=round(percentile(times, 50), 1),
            p99_ms=round(percentile(times, 99), 1),
            max_ms=round(times[-1], 1) if times else 0.0,
            statuses={str(k): v for k, v in sorted(Counter(h.status for h in hits).items())},
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q % of the values at or below it."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class WebServer:
    """`gunicorn events.wsgi` on a loopback port, as the Procfile runs it."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = logs / "gunicorn.log"
        self.process = start_process(
            [
                *(str(VENV_BIN / "gunicorn"), "events.wsgi"),
                *("--bind", f"127.0.0.1:{self.port}", "--workers", str(WEB_WORKERS)),
                *("--timeout", "30"),
            ],
            self.log_path,
        )

    def wait_ready(self, logs: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            check_alive([self.process], "gunicorn", logs)
            with contextlib.suppress(requests.ConnectionError):
                requests.get(f"{self.base}/accounts/login/", timeout=REQUEST_TIMEOUT_S)
                return
            check(time.monotonic() < deadline, "gunicorn did not answer in time")
            time.sleep(0.2)

    def last_error(self) -> str:
        found = ERROR_LINE.findall(self.log_path.read_text(errors="replace"))
        return found[-1] if found else ""


def log_in(base: str, username: str) -> str:
    """Log in through the login form; the session as a Cookie header value.

    With DEBUG off the cookies are Secure, which a client keeps off plain http; so the
    CSRF and session cookies are sent by hand."""
    url = f"{base}/accounts/login/"
    page = requests.get(url, timeout=REQUEST_TIMEOUT_S)
    token = CSRF_INPUT.search(page.text)
    check(page.status_code == 200 and token is not None, f"login page: {page.status_code}")
    assert token is not None
    answer = requests.post(
        url,
        data={
            "username": username,
            "password": ARTIST_PASSWORD,
            "csrfmiddlewaretoken": token.group(1),
        },
        headers={"Cookie": f"csrftoken={page.cookies['csrftoken']}"},
        allow_redirects=False,
        timeout=REQUEST_TIMEOUT_S,
    )
    session = answer.cookies.get("sessionid")
    check(answer.status_code == 302 and session is not None, f"login: {answer.status_code}")
    return f"sessionid={session}"


@dataclass
class DashboardView:
    """One look at the page: its HTTP status, the status badge text, the error if any."""

    http_status: int
    status_text: str | None
    notice: str  # what the SumUp card tells the artist to do
    error: str = ""


def view_dashboard(server: WebServer, cookie: str) -> DashboardView:
    answer = requests.get(
        f"{server.base}/accounts/dashboard/",
        headers={"Cookie": cookie},
        allow_redirects=False,
        timeout=REQUEST_TIMEOUT_S,
    )
    badge, notice = STATUS_SPAN.search(answer.text), NOTICE.search(answer.text)
    return DashboardView(
        http_status=answer.status_code,
        status_text=badge.group(1) if badge else None,
        notice=" ".join(notice.group(1).split()) if notice else "",
        error=server.last_error() if answer.status_code >= 500 else "",
    )


class DashboardLoad:
    """GETs the dashboard at a steady pace (open loop: a slow answer delays no later
    request) until stopped or `max_requests` were sent.

    The client runs in a process of its own: in this one, the driver's own work (the
    in-process `migrate`, the transaction sampler, polling the run) holds the GIL at
    times, and a client thread waiting for it would count that wait as the page's."""

    def __init__(self, url: str, cookie: str, rate: float, max_requests: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.halt = spawn.Event()
        self.answers, sender = spawn.Pipe(duplex=False)
        self.process = spawn.Process(
            target=dashboard_client,
            args=(url, cookie, rate, max_requests, self.halt, sender),
            name="dashboard-load",
            daemon=True,
        )
        self.process.start()
        sender.close()  # the child holds the sending end now
        self.hits: list[Hit] | None = None
        ready = self.answers.poll(START_TIMEOUT_S) and self.answers.recv() == "ready"
        check(bool(ready), "the dashboard load process did not start")

    def stop(self) -> list[Hit]:
        if self.hits is None:
            self.halt.set()
            sent = self.answers.recv() if self.answers.poll(REQUEST_TIMEOUT_S + 30) else []
            self.process.join(10)
            self.hits = sorted((Hit(*hit) for hit in sent), key=lambda hit: hit.at)
        return self.hits


def dashboard_client(
    url: str,
    cookie: str,
    rate: float,
    max_requests: int,
    halt: Any,  # a multiprocessing Event
    answers: Any,  # the sending end of a Pipe: "ready", then the hits as tuples
) -> None:
    """The dashboard load's process: paced GETs from a pool of client threads."""
    hits: list[tuple[float, float, int]] = []
    local = threading.local()

    def one() -> None:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        sent, started = time.time(), time.perf_counter()
        try:
            status = local.http.get(
                url, headers={"Cookie": cookie}, allow_redirects=False, timeout=REQUEST_TIMEOUT_S
            ).status_code
        except requests.RequestException:
            status = 0
        hits.append((sent, (time.perf_counter() - started) * 1000, status))

    with ThreadPoolExecutor(CLIENT_THREADS, thread_name_prefix="dashboard") as pool:
        answers.send("ready")
        begun = time.monotonic()
        for i in range(max_requests):
            if halt.wait(max(0.0, begun + i / rate - time.monotonic())):
                break
            pool.submit(one)
    answers.send(hits)


# --- setup -------------------------------------------------------------------------------


def artist_for_dashboard(server: str, rows: int) -> tuple[int, str]:
    """A legacy artist halfway along the key range, given a password to log in with."""
    from django.contrib.auth.hashers import make_password

    artist = rows // 2 + 1
    with psycopg.connect(conninfo(server)) as conn:
        updated = conn.execute(
            "UPDATE accounts_user SET password = %s WHERE id = %s",
            (make_password(ARTIST_PASSWORD), artist),
        ).rowcount
    check(updated == 1, f"no user {artist} to log in as")
    return artist, f"artist{artist}"


def add_columns_of_later_migrations() -> list[str]:
    """Add the ArtistProfile columns the current code reads but 0003's table lacks.

    They come from 0006/0007 (defaults are constants: catalog-only changes), and do not
    touch the status, so the page can be measured while the status is still NULL."""
    from django.db import connection

    from accounts.models import ArtistProfile

    with connection.cursor() as cursor:
        present = {c.name for c in connection.introspection.get_table_description(cursor, TABLE)}
    missing = [f for f in ArtistProfile._meta.local_concrete_fields if f.column not in present]
    with connection.schema_editor() as editor:
        for column in missing:
            editor.add_field(ArtistProfile, column)
    return [str(column.column) for column in missing]


# --- the floor and the naive loop --------------------------------------------------------


def make_copies(server: str) -> None:
    """File copies of the benchmark database as it stands, one per comparison."""
    from django.db import connections

    # A template database must have no other sessions: this process's, and the kept
    # connections of the benchmark's own gunicorn (DATABASE_CONN_MAX_AGE), which its
    # workers replace on their next request (they check a kept connection before use).
    connections.close_all()
    with psycopg.connect(conninfo(server, "postgres"), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (DB_NAME,),
        )
    for name in COPIES:
        create_database(server, name, template=DB_NAME)


def floor_update(
    server: str, copy: str, rows: int, site: Callable[[], DashboardLoad] | None = None
) -> tuple[float, list[Hit]]:
    """One UPDATE of every pending row of `copy`, as the backfill writes them: its seconds,
    and the dashboard requests sent while it ran if `site` starts a dashboard load."""
    from accounts.sumup.status_backfill import STALE_TOKEN_COLUMNS

    nulls = ", ".join(f"{column} = NULL" for column in STALE_TOKEN_COLUMNS)
    query = (
        f"UPDATE {TABLE} SET sumup_connection_status = 'not_connected', {nulls}"
        " WHERE sumup_connection_status IS NULL"
    )
    checkpoint(server)
    with psycopg.connect(conninfo(server, copy), autocommit=True) as conn:
        client = site() if site else None
        try:
            began, started = time.time(), time.perf_counter()
            updated = conn.execute(query).rowcount
            seconds = time.perf_counter() - started
        finally:
            hits = client.stop() if client else []
    drop_database(server, copy)
    check(updated == rows, f"the floor UPDATE changed {updated} rows, not {rows}")
    return seconds, [hit for hit in hits if began <= hit.at <= began + seconds]


def naive_loop(server: str, rows: int, sample: int) -> float:
    """`save()` each pending artist in turn with the historical model; seconds for `sample`."""
    from django.db import connections
    from django.db.migrations.loader import MigrationLoader

    state = MigrationLoader(None, ignore_no_migrations=True).project_state(("accounts", RECORD))
    model = state.apps.get_model("accounts", "ArtistProfile")
    alias = "bench_naive"
    connections.settings[alias] = {**connections.settings["default"], "NAME": NAIVE_DB}
    try:
        pending = model._default_manager.db_manager(alias).filter(
            sumup_connection_status__isnull=True
        )
        checkpoint(server)
        started = time.perf_counter()
        for profile in pending[:sample]:
            profile.sumup_connection_status = "not_connected"
            profile.save()
        seconds = time.perf_counter() - started
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]
    left = count(conninfo(server, NAIVE_DB), where="sumup_connection_status IS NULL")
    drop_database(server, NAIVE_DB)
    check(left == rows - sample, f"the naive loop left {left} rows NULL, not {rows - sample}")
    return seconds


# --- the backfill ------------------------------------------------------------------------


class XactSampler:
    """Ages of the batch transactions, as pg_stat_activity shows them every XACT_SAMPLE_S.

    A transaction is a batch if a sample caught it in the batch's UPDATE of the artist
    table (long batches always are). Its age counts to the last sample that saw it: a lower
    bound, short of the truth by at most one interval, and it includes the COMMIT."""

    def __init__(self, server: str) -> None:
        self.ages: dict[tuple[int, datetime], float] = {}
        self.batches: set[tuple[int, datetime]] = set()
        self.probe = Probe("xact-sampler", conninfo(server), self.sample, XACT_SAMPLE_S)
        self.probe.start()
        self.probe.ready.wait()

    def sample(self, conn: psycopg.Connection[Any]) -> None:
        for pid, started, age, query in conn.execute(XACT_SAMPLE):
            key = (pid, started)
            self.ages[key] = max(self.ages.get(key, 0.0), float(age))
            if query.startswith(BATCH_UPDATE):
                self.batches.add(key)

    def close(self) -> None:
        self.probe.halt.set()
        self.probe.join()

    def stop(self) -> tuple[float, int]:
        """(longest batch transaction ms, batch transactions seen)."""
        self.close()
        if self.probe.error is not None:
            raise BenchError(f"xact sampler failed: {self.probe.error!r}")
        return max((self.ages[key] for key in self.batches), default=0.0), len(self.batches)


@dataclass
class Migration:
    seconds: float
    ended_at: float  # epoch seconds
    run_id: int
    run_status: str
    rows_left_to_run: int  # the run's rows_total: every pending row, none done inline
    message: str


def record_run(server: str, rows: int) -> Migration:
    """`migrate accounts 0004`: above the inline limit it must only record a pending run
    (which the running workers may have claimed by the time it is read here; that every
    row went through the run is checked on its ledger at the end)."""
    started = time.perf_counter()
    printed = migrate("accounts", RECORD)
    seconds = time.perf_counter() - started
    ended_at = time.time()
    info = conninfo(server)
    run = scalar(info, "SELECT id FROM backfills_backfillrun WHERE backfill = %s", (BACKFILL,))
    check(run is not None, f"0004 recorded no run; it printed: {printed}")
    # What the migration left to the run, as it recorded it: counting the table here
    # would scan it while the backfill runs, and slow the site the benchmark measures.
    with psycopg.connect(info, autocommit=True) as conn:
        found = conn.execute(
            "SELECT status, rows_total FROM backfills_backfillrun WHERE id = %s", (run,)
        ).fetchone()
    assert found is not None
    status, left_to_run = str(found[0]), int(found[1])
    check(status in ("pending", "running"), f"the recorded run is {status}, not pending")
    check(left_to_run == rows, f"0004 left {left_to_run:,} rows to the run, not {rows:,}")
    message = next((line.strip() for line in printed.splitlines() if "exceed" in line), "")
    return Migration(round(seconds, 3), ended_at, int(run), status, left_to_run, message)


@dataclass
class Run:
    status: str
    started_at: float
    finished_at: float
    rows_done: int
    batches_done: int
    batch_size: int
    generation: int
    last_error: str
    recent_batches: list[dict[str, Any]]
    ledger: list[tuple[int, int | None, int, float, float]]  # low, high, rows, ms, at


def wait_for_run(
    server: str, run_id: int, workers: Sequence[subprocess.Popen[bytes]], logs: Path, timeout: float
) -> Run:
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo(server), autocommit=True) as conn:
        while True:
            row = conn.execute(RUN_ROW, (run_id,)).fetchone()
            assert row is not None
            if row[0] not in ACTIVE:
                break
            check_alive(workers, "worker", logs)
            check(time.monotonic() < deadline, f"run still {row[0]} after {timeout:.0f} s")
            time.sleep(POLL_S)
        ledger = [
            (low, high, n, ms, at.timestamp())
            for low, high, n, ms, at in conn.execute(LEDGER, (run_id,)).fetchall()
        ]
    status, started, finished, done, batches, size, recent, generation, error = row
    return Run(
        status=status,
        started_at=started.timestamp() if started else 0.0,
        finished_at=finished.timestamp() if finished else 0.0,
        rows_done=done,
        batches_done=batches,
        batch_size=size,
        generation=generation,
        last_error=error,
        recent_batches=list(recent),
        ledger=ledger,
    )


@dataclass
class Timeline:
    """Seconds from the end of `migrate accounts 0004`."""

    wall_s: float  # to the run's `succeeded`
    to_claim_s: float  # a worker, woken by the migration, claiming the run
    claim_to_first_batch_s: float
    batches_s: float  # first batch's start to the last batch's ledger row
    verify_and_close_s: float  # the end-state count and the run's final save


@dataclass
class Batches:
    count: int
    rows: int
    longest_ledger_ms: float
    longest_recent_ms: float  # over BackfillRun.recent_batches (the last 50)
    longest_sampled_xact_ms: float  # server side, to the end of COMMIT (see XactSampler)
    sampled_xacts: int
    median_ms: float
    first_batch_rows: int
    largest_batch_rows: int
    final_batch_size: int  # BackfillRun.batch_size after the last batch
    ramp_batches: int  # from the first batch to the first near the target duration
    ramp_rows: int
    ramp_s: float
    ledger_ms_total_s: float  # the engine's timed part of every batch
    between_batches_total_s: float  # ledger row, run row, COMMIT, chaining, next lock
    between_batches_median_ms: float
    between_batches_max_ms: float
    long_gaps: int  # >= LONG_GAP_MS: slice handovers and stalls
    rows_per_s_steady: float  # after the ramp, over the engine-timed part
    series: list[tuple[int, float, float]]  # per batch: rows, ledger ms, ms to the next batch


def workers_ready(logs: Path) -> list[float]:
    """When each worker logged that it was ready (epoch seconds; local time, as the
    workers log it, since this process runs with the same Django TIME_ZONE)."""
    return sorted(
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for path in logs.glob("worker-*.log")
        for stamp in READY_LINE.findall(path.read_text(errors="replace"))
    )


def start_workers(logs: Path) -> tuple[list[subprocess.Popen[bytes]], float]:
    """The Procfile's worker command, WORKERS times; returns once every one is ready,
    with the seconds that took."""
    started = time.time()
    workers = [
        start_process(
            [
                *(str(VENV_BIN / "celery"), "-A", "jobs", "worker"),
                *("-n", f"bench-backfill-{i}@%h", "--loglevel", "INFO"),
                *("--concurrency", str(WORKER_CONCURRENCY)),
                *("--without-mingle", "--without-gossip"),
            ],
            logs / f"worker-{i}.log",
        )
        for i in range(1, WORKERS + 1)
    ]
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while len(ready := workers_ready(logs)) < WORKERS:
        check_alive(workers, "worker", logs)
        if time.monotonic() > deadline:
            stop_process_groups(workers)
            raise BenchError(f"the workers were not ready within {WORKER_START_TIMEOUT_S} s")
        time.sleep(0.05)
    return workers, ready[-1] - started


def timeline(migrated_at: float, run: Run) -> Timeline:
    first = run.ledger[0]
    first_start = first[4] - first[3] / 1000
    last_at = run.ledger[-1][4]
    return Timeline(
        wall_s=round(run.finished_at - migrated_at, 3),
        to_claim_s=round(run.started_at - migrated_at, 3),
        claim_to_first_batch_s=round(first_start - run.started_at, 3),
        batches_s=round(last_at - first_start, 3),
        verify_and_close_s=round(run.finished_at - last_at, 3),
    )


def batch_figures(run: Run, target_ms: float, sampled_ms: float, sampled: int) -> Batches:
    rows = [n for _low, _high, n, _ms, _at in run.ledger]
    ms = [m for _low, _high, _n, m, _at in run.ledger]
    gaps = [
        (after[4] - after[3] / 1000 - before[4]) * 1000
        for before, after in itertools.pairwise(run.ledger)
    ]
    ramp = next((i for i, m in enumerate(ms) if m >= RAMP_DONE * target_ms), len(ms) - 1) + 1
    steady_rows, steady_ms = sum(rows[ramp:]), sum(ms[ramp:])
    return Batches(
        count=len(rows),
        rows=sum(rows),
        longest_ledger_ms=round(max(ms), 1),
        longest_recent_ms=round(max((b["ms"] for b in run.recent_batches), default=0.0), 1),
        longest_sampled_xact_ms=round(sampled_ms, 1),
        sampled_xacts=sampled,
        median_ms=round(statistics.median(ms), 1),
        first_batch_rows=rows[0],
        largest_batch_rows=max(rows),
        final_batch_size=run.batch_size,
        ramp_batches=ramp,
        ramp_rows=sum(rows[:ramp]),
        ramp_s=round(sum(ms[:ramp]) / 1000 + sum(gaps[:ramp]) / 1000, 3),
        ledger_ms_total_s=round(sum(ms) / 1000, 3),
        between_batches_total_s=round(sum(gaps) / 1000, 3),
        between_batches_median_ms=round(statistics.median(gaps), 1) if gaps else 0.0,
        between_batches_max_ms=round(max(gaps), 1) if gaps else 0.0,
        long_gaps=sum(gap >= LONG_GAP_MS for gap in gaps),
        rows_per_s_steady=round(steady_rows / (steady_ms / 1000)) if steady_ms else 0.0,
        series=[
            (n, round(m, 1), round(gap, 1))
            for n, m, gap in zip(rows, ms, [*gaps, 0.0], strict=True)
        ],
    )


def contiguous(ledger: Sequence[tuple[int, int | None, int, float, float]]) -> bool:
    """Each batch starts where the previous ended and the last runs to the end."""
    ranges = [(low, high) for low, high, *_ in ledger]
    return ranges[-1][1] is None and all(
        after[0] == before[1] for before, after in itertools.pairwise(ranges)
    )


# --- the run -----------------------------------------------------------------------------


@dataclass
class Target:
    key: str
    text: str  # the rule, with its limit
    figure: float
    limit: float

    @property
    def passed(self) -> bool:
        return self.figure <= self.limit


@dataclass
class Dashboard:
    artist_id: int
    at_0003_schema: DashboardView
    columns_added: list[str]
    while_null: DashboardView | None = None
    after: DashboardView | None = None
    idle: Latency | None = None
    during: Latency | None = None
    during_floor: Latency | None = None  # while the floor UPDATE ran (on its copy)
    worker_start: Latency | None = None  # requests between migration end and the claim
    # The slowest requests during the backfill: (seconds after the run's start, ms).
    during_slowest: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class BenchResult:
    rows: int
    postgres: str
    started_at: str
    workers: str
    rate: float
    settings: dict[str, int]
    setup_seconds: dict[str, float] = field(default_factory=dict)
    load: dict[str, Load] = field(default_factory=dict)
    floor_s: float = 0.0  # under the same dashboard load as the backfill
    floor_quiet_s: float = 0.0  # without it
    naive_sample: int = 0
    naive_s: float = 0.0
    naive_extrapolated_s: float = 0.0
    migration: Migration | None = None
    run_status: str = ""
    run_last_error: str = ""
    rows_null_after: int = -1
    timeline: Timeline | None = None
    workers_boot_s: float = 0.0  # start to every worker ready, before the migration
    batches: Batches | None = None
    dashboard: Dashboard | None = None
    targets: list[Target] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def effective_settings() -> dict[str, int]:
    from django.conf import settings

    names = ("BACKFILL_INLINE_MAX_ROWS", "BACKFILL_BATCH_SIZE", "BACKFILL_TARGET_BATCH_MS")
    return {name: int(getattr(settings, name)) for name in (*names, "BACKFILL_PAUSE_MS")}


def prepare(server: str, result: BenchResult) -> None:
    create_database(server, DB_NAME)
    info = conninfo(server)
    with timed(result.setup_seconds, "migrate_to_0002", places=3):
        migrate("accounts", BEFORE)
        migrate("backfills")
        migrate("sessions")
        migrate("axes")  # the login throttle's records, which every login reads
    log(f"loading {result.rows:,} users and artist profiles")
    with timed(result.setup_seconds, "copy_and_vacuum", places=3):
        load_rows(info, result.rows)
    with timed(result.setup_seconds, "migrate_0003", places=3):
        migrate("accounts", ADD_COLUMNS)
    nulls = count(info, where="sumup_connection_status IS NULL")
    check(nulls == result.rows, f"after 0003, {nulls} of {result.rows} statuses are NULL")
    result.checks.append(f"loaded {result.rows:,} artists; after 0003 every status is NULL")


def run_bench(args: argparse.Namespace, stack: contextlib.ExitStack) -> BenchResult:
    rows, server = args.rows, args.server
    result = BenchResult(
        rows=rows,
        postgres=str(scalar(conninfo(server, "postgres"), "SHOW server_version")),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        workers=f"{WORKERS} x celery -A jobs worker --concurrency {WORKER_CONCURRENCY}",
        rate=args.rate,
        settings=effective_settings(),
    )
    logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-backfill-")))
    stack.callback(drop_databases, server)
    flush_redis()
    stack.callback(flush_redis)
    prepare(server, result)
    artist, username = artist_for_dashboard(server, rows)

    log("starting gunicorn and logging in")
    web = WebServer(logs)
    stack.callback(stop_process_groups, [web.process])
    web.wait_ready(logs)
    cookie = log_in(web.base, username)
    dashboard = Dashboard(artist, view_dashboard(web, cookie), [])
    result.dashboard = dashboard
    dashboard.columns_added = add_columns_of_later_migrations()
    dashboard.while_null = view_dashboard(web, cookie)

    dashboard_url = f"{web.base}/accounts/dashboard/"

    def site() -> DashboardLoad:
        return DashboardLoad(dashboard_url, cookie, args.rate, int(args.rate * RUN_TIMEOUT_S))

    with timed(result.setup_seconds, "copies", places=3):
        make_copies(server)
    log("floor: one UPDATE on a copy")
    result.floor_quiet_s = round(floor_update(server, QUIET_FLOOR_DB, rows)[0], 3)
    result.naive_sample = min(args.naive_sample, rows)
    log(f"naive loop: {result.naive_sample:,} save() calls on a copy")
    result.naive_s = round(naive_loop(server, rows, result.naive_sample), 3)
    result.naive_extrapolated_s = round(result.naive_s / result.naive_sample * rows, 1)

    # Every web worker serves a few requests first, uncounted: a worker's first answer
    # (its database connection, templates, lazy imports) is slow once, in no phase's favour.
    warm_up = DashboardLoad(dashboard_url, cookie, args.rate, int(args.rate * WARM_UP_S))
    stack.callback(warm_up.stop)
    time.sleep(WARM_UP_S)
    warm_up.stop()
    log(f"dashboard idle for {args.idle_seconds:.0f} s")
    checkpoint(server)
    with measure_load(result.load, "dashboard idle"):
        idle = DashboardLoad(dashboard_url, cookie, args.rate, int(args.rate * args.idle_seconds))
        stack.callback(idle.stop)
        time.sleep(args.idle_seconds)
        dashboard.idle = Latency.of(idle.stop())

    # Right before the backfill, so that the two are measured in like conditions.
    log("floor: one UPDATE on another copy, with the dashboard load beside it")
    with measure_load(result.load, "floor UPDATE + dashboard"):
        floor_s, hits = floor_update(server, FLOOR_DB, rows, site)
    result.floor_s = round(floor_s, 3)
    dashboard.during_floor = Latency.of(hits)

    # The site's workers are running, as on a live site: 0004 wakes them. A cold start
    # (the runbook restarts the workers in Step 8) adds their boot, shown on its own.
    log(f"starting {WORKERS} workers")
    workers, result.workers_boot_s = start_workers(logs)
    stack.callback(stop_process_groups, workers)
    log("migrate accounts 0004")
    checkpoint(server)
    with measure_load(result.load, "backfill (from migration end)"):
        load = site()
        stack.callback(load.stop)
        sampler = XactSampler(server)
        stack.callback(sampler.close)
        result.migration = record_run(server, rows)
        migrated_at = result.migration.ended_at
        log(f"  returned in {result.migration.seconds:.2f} s")
        run = wait_for_run(server, result.migration.run_id, workers, logs, RUN_TIMEOUT_S)
        hits = load.stop()
        sampled_ms, sampled = sampler.stop()
    log(f"  run {run.status}; stopping the workers")
    stop_process_groups(workers)

    result.run_status, result.run_last_error = run.status, run.last_error
    result.rows_null_after = count(conninfo(server), where="sumup_connection_status IS NULL")
    dashboard.after = view_dashboard(web, cookie)
    during = [h for h in hits if run.started_at <= h.at <= run.finished_at]
    dashboard.during = Latency.of(during)
    dashboard.during_slowest = [
        (round(h.at - run.started_at, 3), round(h.ms, 1))
        for h in sorted(during, key=lambda h: h.ms)[-SLOWEST_SHOWN:]
    ]
    dashboard.worker_start = Latency.of([h for h in hits if h.at < run.started_at])
    if run.status != "succeeded":
        result.failures.append(f"the run ended {run.status}: {run.last_error}")
    if result.rows_null_after:
        result.failures.append(f"{result.rows_null_after:,} rows left NULL")
    if not run.ledger:
        result.failures.append("the run wrote no ledger rows")
        return result
    result.timeline = timeline(migrated_at, run)
    target_ms = result.settings["BACKFILL_TARGET_BATCH_MS"]
    result.batches = batch_figures(run, target_ms, sampled_ms, sampled)
    if run.rows_done == rows == result.batches.rows and contiguous(run.ledger):
        result.checks.append(
            f"run #{result.migration.run_id}: {rows:,} rows in {run.batches_done} batches, "
            f"ledger ranges contiguous, generation {run.generation}"
        )
    else:
        result.failures.append(
            f"ledger: {result.batches.rows:,} rows, run rows_done {run.rows_done:,}, "
            f"contiguous={contiguous(run.ledger)}"
        )
    result.targets = targets(result)
    return result


def targets(result: BenchResult) -> list[Target]:
    assert result.timeline and result.batches and result.dashboard and result.dashboard.idle
    batch = LONGEST_BATCH_MS_MAX
    wall_limit = round(WALL_OVER_FLOOR_MAX * result.floor_s, 2)
    found = [
        Target(
            "wall",
            f"<= {WALL_OVER_FLOOR_MAX:g} x floor (loaded) = {wall_limit:,.2f} s",
            result.timeline.wall_s,
            wall_limit,
        ),
        Target("batch", f"<= {batch:.0f} ms", result.batches.longest_ledger_ms, batch),
        Target("xact", f"<= {batch:.0f} ms", result.batches.longest_sampled_xact_ms, batch),
    ]
    during = result.dashboard.during
    if during and during.requests:
        limit = round(DASHBOARD_P99_RATIO_MAX * result.dashboard.idle.p99_ms, 1)
        text = f"<= {DASHBOARD_P99_RATIO_MAX:g} x idle p99 = {limit:.1f} ms"
        found.append(Target("p99", text, during.p99_ms, limit))
    return found


# --- report ------------------------------------------------------------------------------


def seconds(value: float) -> str:
    return f"{value:,.2f} s" if value < 600 else f"{value:,.0f} s ({value / 3600:.1f} h)"


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f} x" if floor else "n/a"


def row(label: str, figure: str, target: str = "", verdict: str = "", note: str = "") -> str:
    return f"{label:<42} {figure:>17}  {target:<30} {verdict:<4} {note}".rstrip()


def verdict(target: Target | None) -> tuple[str, str]:
    """(the target as text, PASS/FAIL)."""
    if target is None:
        return "", ""
    return target.text, "PASS" if target.passed else "FAIL"


def latency_row(label: str, latency: Latency | None, target: Target | None = None) -> str:
    if latency is None or not latency.requests:
        return row(label, "no requests")
    note = f"{latency.requests} requests, {latency.errors} errors, max {latency.max_ms:.1f} ms"
    figure = f"{latency.p50_ms:.1f} / {latency.p99_ms:.1f} ms"
    return row(label, figure, *verdict(target), note=note)


def summary_rows(result: BenchResult) -> list[str]:
    by_key = {target.key: target for target in result.targets}
    lines = [row("", "figure", "target", "")]
    if result.migration:
        m = result.migration
        note = f"run #{m.run_id} {m.run_status}, {m.rows_left_to_run:,} rows left to it"
        lines.append(
            row("migrate accounts 0004", seconds(m.seconds), "returns at once", "OK", note)
        )
    if result.timeline:
        t = result.timeline
        lines += [
            row(
                "backfill: migration end -> succeeded",
                seconds(t.wall_s),
                *verdict(by_key["wall"]),
                note=f"{ratio(t.wall_s, result.floor_s)} floor (loaded), "
                f"{ratio(t.wall_s, result.floor_quiet_s)} quiet floor",
            ),
            row("  a woken worker claims the run", seconds(t.to_claim_s)),
            row("  claim -> first batch", seconds(t.claim_to_first_batch_s)),
            row("  first batch -> last batch", seconds(t.batches_s)),
            row("  end-state count, run closed", seconds(t.verify_and_close_s)),
            row(
                "workers' boot, before the migration",
                seconds(result.workers_boot_s),
                note="not counted: a cold start (runbook Step 8) adds it",
            ),
        ]
    lines += [
        row("floor: one UPDATE, dashboard load beside it", seconds(result.floor_s)),
        row("floor: one UPDATE, quiet", seconds(result.floor_quiet_s)),
        row(f"naive save() loop: {result.naive_sample:,} rows", seconds(result.naive_s)),
        row(f"  extrapolated to {result.rows:,} rows", seconds(result.naive_extrapolated_s)),
    ]
    if result.batches:
        b = result.batches
        ledger, sampled = by_key["batch"], by_key["xact"]
        lines += [
            row("longest batch: ledger ms", f"{b.longest_ledger_ms:.1f} ms", *verdict(ledger)),
            row("longest batch: BackfillRun.recent_batches", f"{b.longest_recent_ms:.1f} ms"),
            row(
                "longest batch transaction, server side",
                f"{b.longest_sampled_xact_ms:.1f} ms",
                *verdict(sampled),
                note=f"to end of COMMIT, sampled every {XACT_SAMPLE_S * 1000:.0f} ms",
            ),
            row("batches", f"{b.count:,}", note=f"{b.rows:,} rows"),
            row("final batch size", f"{b.final_batch_size:,} rows"),
        ]
    if result.dashboard:
        d = result.dashboard
        lines += [
            latency_row("dashboard p50 / p99: idle", d.idle),
            latency_row("dashboard p50 / p99: during the backfill", d.during, by_key.get("p99")),
            latency_row("dashboard p50 / p99: during the floor UPDATE", d.during_floor),
        ]
    return lines


def time_rows(result: BenchResult) -> list[str]:
    """Where the backfill's time went, from the ledger."""
    if result.batches is None:
        return []
    b = result.batches
    floor_rate = result.rows / result.floor_s if result.floor_s else 0.0
    return [
        "where the backfill's time went (ledger `ms` is the engine-timed part of a batch:",
        "run-row lock to the artist UPDATE; 'between' is the ledger insert, the run-row save,",
        "COMMIT, the slice loop and the next batch's start):",
        f"  in batches {seconds(b.ledger_ms_total_s)}, between batches "
        f"{seconds(b.between_batches_total_s)} (median {b.between_batches_median_ms:.1f} ms, "
        f"max {b.between_batches_max_ms:.1f} ms, {b.long_gaps} gaps >= {LONG_GAP_MS:.0f} ms)",
        f"  batch ms median {b.median_ms:.1f}; rows per batch: {b.first_batch_rows:,} first, "
        f"{b.largest_batch_rows:,} largest; ramp to the target duration: {b.ramp_batches} "
        f"batches, {b.ramp_rows:,} rows, {seconds(b.ramp_s)}",
        f"  after the ramp {b.rows_per_s_steady:,.0f} rows/s inside batches; "
        f"the floor UPDATE {floor_rate:,.0f} rows/s",
    ]


def view_rows(name: str, view: DashboardView | None) -> list[str]:
    if view is None:
        return []
    lines = [f"  {name:<36} HTTP {view.http_status}, status badge {view.status_text!r}"]
    if view.notice:
        lines.append(f"  {'':<36} says: {view.notice}")
    if view.error:
        lines.append(f"  {'':<36} {view.error}")
    return lines


def dashboard_rows(result: BenchResult) -> list[str]:
    d = result.dashboard
    if d is None:
        return []
    return [
        f"dashboard of legacy artist #{d.artist_id} (gunicorn, {WEB_WORKERS} workers, "
        f"{result.rate:.0f} requests/s):",
        *view_rows("on the 0003 schema, current code", d.at_0003_schema),
        f"  {'columns then added for the code':<36} {', '.join(d.columns_added) or '-'}",
        *view_rows("status NULL, before the backfill", d.while_null),
        *view_rows("after the backfill", d.after),
        latency_row("  while the workers start (not counted)", d.worker_start),
        "  slowest during the backfill         "
        + ", ".join(f"{ms:.1f} ms at +{at:.2f} s" for at, ms in reversed(d.during_slowest)),
    ]


def render(result: BenchResult) -> str:
    lines = [
        f"SumUp status backfill on {result.rows:,} artists (PostgreSQL {result.postgres}), "
        f"{result.workers}",
        "settings: " + ", ".join(f"{k}={v:,}" for k, v in result.settings.items()),
        "",
        *summary_rows(result),
        "",
        "targets are reported, not enforced: a missed one does not fail the exit status.",
        "",
        *time_rows(result),
        "",
        *dashboard_rows(result),
        "",
        "machine (every process on it, this benchmark's included; other runs make noise):",
        *(
            f"  {phase:<36} CPU busy {load.cpu_busy_percent:5.1f} %, "
            f"load average {load.load_average_1m:.2f}"
            for phase, load in result.load.items()
        ),
        "setup: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.setup_seconds.items()),
        "checks:",
        *(f"  {line}" for line in result.checks),
        *(f"FAILED: {failure}" for failure in result.failures),
    ]
    return "\n".join(lines)


def results_data(result: BenchResult) -> dict[str, Any]:
    data = asdict(result)
    data["targets"] = [{**asdict(t), "passed": t.passed} for t in result.targets]
    return data


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="artists to load")
    size.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_ROWS:,} rows (CI smoke)",
    )
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--rate", type=float, default=DASHBOARD_RATE, help="dashboard req/s")
    args = parser.parse_args(argv)
    args.idle_seconds = QUICK_IDLE_S if args.quick else IDLE_S
    args.naive_sample = QUICK_NAIVE_SAMPLE if args.quick else NAIVE_SAMPLE
    if args.quick:
        args.rows = QUICK_ROWS
    small = args.rows <= DEFAULT_INLINE_MAX_ROWS
    args.inline_max_rows = args.rows // SMALL_RUN_INLINE_SHARE if small else None
    if args.rows < 2 or args.rate <= 0:
        parser.error("--rows must be at least 2 and --rate positive")
    args.server = args.server.rstrip("/")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_environment(args.server, args.inline_max_rows)
    signal.signal(signal.SIGTERM, on_terminate)
    try:
        with contextlib.ExitStack() as stack:
            result = run_bench(args, stack)
    except (BenchError, psycopg.Error, requests.RequestException) as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    write_json(RESULTS_FILE, results_data(result))
    print(render(result))
    print(f"\nwritten: {RESULTS_FILE.relative_to(PROJECT_DIR)}")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
