"""Benchmark the scheduled SumUp token refresh: the real sweep, real Celery workers.

Run:  .venv/bin/python bench/token_refresh_bench.py [--quick] [--artists N] [--rate-artists N]
        [--floor-calls N]
(default: run A on 10,000 artists, run B on 2,000, a floor of 2,000 request pairs; --quick:
300, 150 and 100, for a CI smoke run).

What it sets up, and tears down again at the end (also when a step fails):

- a fake SumUp as a subprocess (`python -m fakes.sumup --port 0 --latency-ms 50`; port 0
  lets it pick a free port, which it prints), with one user per artist, plus a note of
  when each token request arrives (the fake keeps none; see FAKE_WITH_ARRIVALS);
- a fresh PostgreSQL database `bench_refresh`, brought up with the real `migrate`;
- Redis database 9 as broker, cache and budget store (flushed before, between, after);
- per run, WORKERS real `celery -A jobs worker` processes (subprocesses), started with
  that run's SUMUP_API_RATE_LIMIT and stopped (TERM, then KILL) after it.

Artists are loaded with COPY: each has a real grant minted at the fake (`/_fake/grants`),
tokens encrypted with `accounts.sumup.crypto.encrypt`, an access token expiring in a
minute (so the sweep finds it due) and `sumup_last_refresh_at` NULL. Each run enqueues
through the real sweep (`accounts.sumup.sweep.run_sweep(exclusive=False)`, in this process,
with the run's budget, as a beat's worker would run it)
and waits until every one of its artists has a `sumup_last_refresh_at`.

- Run A: a budget far above need (10000/s). Wall time is from the sweep's start to the
  last `sumup_last_refresh_at`; the floor is artists x latency / worker slots, the time
  if every slot did nothing but wait on SumUp. Target: throughput >= 70 % of the floor's.
- Run B: the budget at 50/s, on fewer artists (2,000 take 40 s at that rate). The rate
  is checked where SumUp would count it, on the arrival times of token requests at the
  fake: the achieved rate (calls in the full seconds after the first call, per second)
  should be within 5 % of 50/s, and no 1-second window (anchored at every call) may hold
  more than 50. Shown beside it, to explain a difference: the budget's own log of grants
  (the limiter's list in Redis, polled) and `sumup_last_refresh_at` (set by the worker
  right after each call returns).

Hard checks (exit status 1): every artist refreshed by exactly one token call (the fake's
`token_calls_by_user`), every artist connected with a new token, and in run B no window
of the budget's grants above the limit. The throughput and rate targets, and the windows
as the fake saw them, are reported, not enforced.

Besides the figures, each run reports where CPU time went (from /proc: the workers, the
fake, PostgreSQL (the whole server, other sessions included), Redis, this driver, and
anything else on the machine), because on a small machine the refresh is bound by CPU
long before it is bound by SumUp's latency.

Beside run A's CPU per refresh stands its floor, measured between runs A and B: the CPU
that no refresh design can avoid, one token request and one UPDATE. This process makes
`--floor-calls` such pairs in sequence for run A's first artist: a `refresh_token` POST to
the same fake (same latency, kept-alive `requests` session, the wire format of
accounts.sumup.client), each with the refresh token the previous answer returned, then a
prepared, autocommitted UPDATE setting that row's access token (encrypted, as every stored
token is) and expiry. Its CPU is counted from /proc as run A's is, over the processes a
refresh uses: the workers (none running then, so 0), the fake, the whole PostgreSQL server
and this driver; Redis is shown but left out of the sum, as the pairs never touch it. So
the ratio is like for like: what a refresh costs above the floor is the queue, the budget,
the claim and the framework around the call. The ratio is shown, not checked. The floor's
pairs are ~50 ms apart, so whatever else the shared processes do meanwhile (another
database's sessions on the server, say) weighs more in it than in run A's dense run: its
breakdown and the whole machine's figures are shown beside it, and the floor is only as
good as the machine is quiet.
The figures also go to bench/results/token_refresh.json.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import django
import psycopg
import redis
import requests
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
# Run as a script, only bench/ is on sys.path; the shared helpers live in bench.common.
sys.path.insert(0, str(PROJECT_DIR))

from bench.common import (  # noqa: E402
    DEFAULT_SERVER,
    VENV_BIN,
    WEBAPP_DIR,
    BenchError,
    busiest_window,
    check,
    create_database,
    drop_database,
    full_seconds_rate,
    lateness_ms,
    log,
    on_terminate,
    production_stand_ins,
    stop_process_groups,
    timed,
    write_json,
)

RESULTS_FILE = BENCH_DIR / "results" / "token_refresh.json"

DB_NAME = "bench_refresh"
REDIS_URL = "redis://127.0.0.1:6379/9"  # the benchmark's own Redis database, flushed freely
CLIENT_ID, CLIENT_SECRET = "jersey-events-local", "local-secret"

LATENCY_MS = 50  # the fake's answer time for every token call
WORKERS = 2
# The workers run as the Procfile configures them: the default (prefork) pool with
# WORKER_CONCURRENCY processes each. Other pools and sizes: --pool, --concurrency.
POOL, CONCURRENCY = "prefork", int(os.environ.get("WORKER_CONCURRENCY") or 3)
FAST_RATE, SLOW_RATE = "10000/s", "50/s"
FULL_ARTISTS, FULL_RATE_ARTISTS = 10_000, 2_000
QUICK_ARTISTS, QUICK_RATE_ARTISTS = 300, 150
THROUGHPUT_TARGET = 0.70  # of the floor's
RATE_TOLERANCE = 0.05

EXPIRES_IN_S = 60  # the loaded access tokens: inside the 600 s refresh window, so due
MINT_THREADS = 8
POLL_S = 0.25
WORKER_READY_S = 60.0
WORKER_STOP_S = 30.0
FAKE_READY_S = 30.0


def email_of(n: int) -> str:
    return f"artist{n}@example.com"  # the fake's seeded users, merchant MFK<n>


# --- PostgreSQL and Redis ------------------------------------------------------------------


def drop_bench_database(server: str) -> None:
    from django.db import connections

    connections.close_all()
    drop_database(server, DB_NAME)


def flush_bench_redis() -> None:
    check(REDIS_URL.endswith("/9"), "the benchmark may only flush Redis database 9")
    redis.Redis.from_url(REDIS_URL).flushdb()


def rows(conninfo: str, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


# --- the fake SumUp --------------------------------------------------------------------------


# `python -m fakes.sumup` with one addition: the fake keeps no request times, so this notes
# when each token request arrives (what SumUp's own rate limit would count) and serves the
# list at /_fake/bench-arrivals. Nothing else about the fake changes.
FAKE_WITH_ARRIVALS = """
import sys, time
from fakes.sumup import __main__ as cli, app, control

arrivals = []
answer = app.App.handle

def handle(self, request):
    if request.path == "/token":
        arrivals.append(time.time())
    return answer(self, request)

app.App.handle = handle
control.ROUTES["/_fake/bench-arrivals"] = (("GET",), lambda state, data: arrivals)
sys.exit(cli.main(sys.argv[1:]))
"""


class FakeProcess:
    """The fake SumUp on a port it picks itself; `url` is what it printed."""

    def __init__(self, seed_users: int, logs: Path) -> None:
        self.log_path = logs / "fake.log"
        self.stderr = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-c", FAKE_WITH_ARRIVALS, "--port", "0"),
                *("--latency-ms", str(LATENCY_MS), "--seed-users", str(seed_users)),
                *("--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET),
            ],
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
        )
        self.url = self._read_url()

    def _read_url(self) -> str:
        """The URL from the fake's first line; a thread reads it so a hang cannot stall us."""
        stdout = self.process.stdout
        assert stdout is not None
        found: list[bytes] = []
        reader = threading.Thread(target=lambda: found.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(FAKE_READY_S)
        line = found[0].decode().strip() if found else ""
        check(line.startswith("Fake SumUp listening on "), f"fake SumUp did not start: {line!r}")
        return line.rsplit(" ", 1)[1]

    def _get(self, path: str) -> Any:
        response = requests.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._get("/_fake/stats")
        return stats

    def arrivals(self, since: float) -> list[float]:
        """When token requests reached the fake (its clock: this machine's), sorted."""
        return sorted(t for t in self._get("/_fake/bench-arrivals") if t >= since)

    def stop(self) -> None:
        stop_process_groups([self.process], WORKER_STOP_S)
        self.stderr.close()


def mint_grants(url: str, numbers: Sequence[int]) -> dict[int, dict[str, Any]]:
    """A real grant per artist at the fake, through its control API (never delayed)."""
    local = threading.local()

    def mint(n: int) -> tuple[int, dict[str, Any]]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = local.session.post(
            f"{url}/_fake/grants", json={"email": email_of(n)}, timeout=10
        )
        response.raise_for_status()
        return n, response.json()

    with ThreadPoolExecutor(MINT_THREADS) as pool:
        return dict(pool.map(mint, numbers))


# --- loading artists ---------------------------------------------------------------------------


def user_row(n: int, now: datetime) -> dict[str, Any]:
    return {
        **{"id": n, "password": "!", "username": f"artist{n}", "email": email_of(n)},
        **{"first_name": "", "last_name": "", "phone": "", "user_type": "artist"},
        **{"is_superuser": False, "is_staff": False, "is_active": True, "email_verified": True},
        "date_joined": now,
    }


def profile_row(n: int, grant: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A connected artist whose access token expires inside the refresh window."""
    from accounts.sumup.crypto import encrypt  # needs django.setup()

    return {
        **{"id": n, "user_id": n, "display_name": f"Artist {n}", "bio": "", "business_name": ""},
        **{"is_approved": True, "created_at": now, "updated_at": now},
        "sumup_access_token": encrypt(grant["access_token"]),
        "sumup_refresh_token": encrypt(grant["refresh_token"]),
        "sumup_token_type": "Bearer",
        "sumup_expires_at": now + timedelta(seconds=EXPIRES_IN_S),
        "sumup_scope": grant["scope"],
        "sumup_merchant_code": f"MFK{n:05d}",
        "sumup_connected_at": now,
        "sumup_connection_status": "connected",
        "sumup_refresh_token_issued_at": now,
        **{"sumup_business_name": "", "sumup_last_error": "", "sumup_refresh_claim": ""},
        **{"sumup_refresh_failures": 0, "sumup_token_version": 0},
    }


def copy_rows(cur: psycopg.Cursor[Any], table: str, rows: list[dict[str, Any]]) -> None:
    columns = sql.SQL(", ").join(map(sql.Identifier, rows[0]))
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), columns)
    with cur.copy(query) as copy:
        for row in rows:
            copy.write_row(tuple(row.values()))
    cur.execute(
        sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM {}))").format(
            sql.Identifier(table)
        ),
        (table,),
    )


def load_artists(conninfo: str, grants: dict[int, dict[str, Any]]) -> None:
    """COPY one user and one connected, due artist profile per grant."""
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        copy_rows(cur, "accounts_user", [user_row(n, now) for n in grants])
        copy_rows(
            cur, "accounts_artistprofile", [profile_row(n, g, now) for n, g in grants.items()]
        )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) accounts_user, accounts_artistprofile")


# --- processes -------------------------------------------------------------------------------


@dataclass
class WorkerSet:
    """WORKERS real `celery -A jobs worker` processes for one run."""

    env: dict[str, str]
    logs: Path
    pool: str
    concurrency: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    hostnames: list[str] = field(default_factory=list)

    def start(self, count: int, run: str) -> None:
        for i in range(1, count + 1):
            hostname = f"bench-{run}-{i}@{os.uname().nodename}"
            log_file = (self.logs / f"worker-{run}-{i}.log").open("wb")
            self.processes.append(
                subprocess.Popen(
                    [
                        *(str(VENV_BIN / "celery"), "-A", "jobs", "worker", "-n", hostname),
                        *("--pool", self.pool, "--concurrency", str(self.concurrency)),
                        *("--loglevel", "WARNING", "--without-gossip", "--without-mingle"),
                    ],
                    cwd=PROJECT_DIR,
                    env=self.env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log_file.close()  # the child holds its own descriptor
            self.hostnames.append(hostname)
        self._wait_ready()

    def _wait_ready(self) -> None:
        from jobs import app

        deadline = time.monotonic() + WORKER_READY_S
        while True:
            self.check_alive()
            replies = app.control.ping(destination=self.hostnames, timeout=1.0) or []
            if {name for reply in replies for name in reply} >= set(self.hostnames):
                return
            check(time.monotonic() < deadline, f"workers not ready in {WORKER_READY_S:.0f} s")

    def check_alive(self) -> None:
        for process, name in zip(self.processes, self.hostnames, strict=True):
            check(process.poll() is None, f"worker {name} exited with {process.returncode}")

    def stop(self) -> None:
        stop_process_groups(self.processes, WORKER_STOP_S)

    def log_tails(self, lines: int = 20) -> str:
        tails = []
        for path in sorted(self.logs.glob("worker-*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(tails)


# --- CPU accounting from /proc -------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    comm: str
    ppid: int
    own: float  # seconds of user + system CPU
    children: float  # of its children that exited and were reaped


def proc_stats() -> dict[int, ProcStat]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        rest = text[text.rindex(")") + 2 :].split()
        ticks = [int(value) for value in rest[11:15]]  # utime stime cutime cstime
        stats[int(entry.name)] = ProcStat(
            text[text.index("(") + 1 : text.rindex(")")],
            int(rest[1]),
            (ticks[0] + ticks[1]) / CLOCK_TICKS,
            (ticks[2] + ticks[3]) / CLOCK_TICKS,
        )
    return stats


def descendants(stats: dict[int, ProcStat], roots: Iterable[int]) -> list[int]:
    """The processes among `stats` that are `roots` or descend from one."""
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    found, todo = [], [pid for pid in roots if pid in stats]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu(stats: dict[int, ProcStat], roots: Iterable[int]) -> float:
    """CPU of processes and all their descendants, living or reaped."""
    return sum(stats[pid].own + stats[pid].children for pid in descendants(stats, roots))


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (every core)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def cpu_sample(workers: Sequence[int], fake: int) -> dict[str, float]:
    stats = proc_stats()
    postmasters = [  # a postgres process whose parent is not one: its backends are below
        pid
        for pid, s in stats.items()
        if s.comm == "postgres" and getattr(stats.get(s.ppid), "comm", "") != "postgres"
    ]
    sample = {
        "workers": tree_cpu(stats, workers),
        "fake SumUp": tree_cpu(stats, [fake]),
        "postgres": tree_cpu(stats, postmasters),
        "redis": tree_cpu(stats, [p for p, s in stats.items() if s.comm == "redis-server"]),
        "driver": stats[os.getpid()].own,
    }
    sample["machine"] = machine_busy()
    return sample


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    used = {name: after[name] - before[name] for name in before}
    named = sum(value for name, value in used.items() if name != "machine")
    used["other processes"] = max(0.0, used["machine"] - named)
    return used


class SweepSummary(logging.Handler):
    """Reads the outcome counts the sweep logs (and clears from Redis) at its end."""

    LOGGER = "jobs.token_refresh"

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()
        self.logger = logging.getLogger(self.LOGGER)
        self.level_before = self.logger.level

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("SumUp refresh sweep:"):
            since = record.getMessage().rsplit("outcomes since last sweep:", 1)[-1]
            for name, _, n in (pair.partition("=") for pair in since.split()):
                self.counts[name] += int(n)

    def __enter__(self) -> SweepSummary:
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


class BudgetLog(threading.Thread):
    """Copies the budget's own log of grants (the moving window's list in Redis) while a
    run goes on. A grant stays in that list until `limit` newer ones push it out, which
    the window allows only a second later, so polling every 50 ms misses none."""

    POLL_S = 0.05

    def __init__(self, rate_limit: str) -> None:
        super().__init__(name="budget-log", daemon=True)
        from limits.storage import RedisStorage

        from events.rate_limits import parse_rate

        # events.rate_limits.acquire hits the rule under the identifiers ("events", rule)
        key = parse_rate(rate_limit).key_for("events", "sumup-api")
        self.key = f"{RedisStorage.PREFIX}:{key}"
        self.grants: set[bytes] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        while not self.halt.is_set():
            self.grants.update(cast(list[bytes], client.lrange(self.key, 0, -1)))
            self.halt.wait(self.POLL_S)

    def __enter__(self) -> BudgetLog:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.halt.set()
        self.join()

    def times(self) -> list[float]:
        return sorted(float(value) for value in self.grants)


# --- one run ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    name: str
    rate_limit: str
    artists: int
    slots: int
    started_at: float = 0.0
    enqueue_seconds: float = 0.0
    wall_seconds: float = 0.0
    floor_seconds: float = 0.0
    refreshes_per_second: float = 0.0
    floor_per_second: float = 0.0
    of_floor: float = 0.0
    mean_calls_in_flight: float = 0.0
    max_token_requests_in_flight: int = 0
    calls_per_artist: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    limit_per_second: int = 0
    rate: list[RateFigures] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    failed: bool = False
    targets: list[str] = field(default_factory=list)

    def hard_check(self, holds: bool, text: str) -> None:
        """Record a hard check; a failed one fails the benchmark once it has reported."""
        self.checks.append(f"{self.name}: {text}: {'ok' if holds else 'FAILED'}")
        self.failed = self.failed or not holds


@dataclass
class Bench:
    server: str
    fake: FakeProcess
    logs: Path
    pool: str
    concurrency: int

    @property
    def conninfo(self) -> str:
        return f"{self.server}/{DB_NAME}"

    def worker_env(self, rate_limit: str) -> dict[str, str]:
        # Workers draw database connections from a pool, as production should run them.
        return {**os.environ, "SUMUP_API_RATE_LIMIT": rate_limit}

    def run(
        self, name: str, tag: str, numbers: range, rate_limit: str, budget: BudgetLog | None = None
    ) -> RunResult:
        result = RunResult(name, rate_limit, len(numbers), WORKERS * self.concurrency)
        flush_bench_redis()
        workers = WorkerSet(self.worker_env(rate_limit), self.logs, self.pool, self.concurrency)
        try:
            workers.start(WORKERS, tag)
            log(f"{name}: {len(numbers):,} artists, {result.slots} worker slots, {rate_limit}")
            with budget or contextlib.nullcontext():
                self._measure(result, numbers, workers)
        except BenchError:
            log("worker logs:\n" + workers.log_tails())
            raise
        finally:
            workers.stop()
        self._verify(result, numbers)
        return result

    def _measure(self, result: RunResult, numbers: range, workers: WorkerSet) -> None:
        from django.test import override_settings

        from accounts.sumup.refresh_outcomes import OUTCOMES_KEY
        from accounts.sumup.sweep import run_sweep

        pids = [process.pid for process in workers.processes]
        cpu_before = cpu_sample(pids, self.fake.process.pid)
        result.started_at = time.time()
        # The sweep books the refreshes' slots of the budget: with the workers' budget.
        with SweepSummary() as summary, override_settings(SUMUP_API_RATE_LIMIT=result.rate_limit):
            report = run_sweep(exclusive=False)
        result.enqueue_seconds = time.time() - result.started_at
        # The sweep queues the next few seconds of work; its dispatcher, on the workers,
        # hands out the rest.
        handed_out = report.more_due or sorted(report.enqueued) == list(numbers)
        check(
            bool(report.enqueued) and set(report.enqueued) <= set(numbers) and handed_out,
            f"the sweep enqueued {len(report.enqueued)} artists",
        )
        last = self._wait_done(numbers, workers, timeout=self._timeout(result))
        cpu_after = cpu_sample(pids, self.fake.process.pid)
        result.wall_seconds = last - result.started_at
        result.cpu_seconds = cpu_used(cpu_before, cpu_after)
        # Outcomes counted before the sweep's summary line are in that line; the rest since.
        since = cast(dict[bytes, bytes], redis.Redis.from_url(REDIS_URL).hgetall(OUTCOMES_KEY))
        counts = summary.counts + Counter({k.decode(): int(v) for k, v in since.items()})
        result.outcomes = {name: n for name, n in sorted(counts.items()) if n}

    def _timeout(self, result: RunResult) -> float:
        per_second = 20.0  # far below what any healthy run does
        if result.rate_limit == SLOW_RATE:
            per_second = min(per_second, float(SLOW_RATE.split("/")[0]) / 2)
        return 60 + result.artists / per_second

    def _wait_done(self, numbers: range, workers: WorkerSet, timeout: float) -> float:
        """Poll until every artist of the run is refreshed and its queued work is over
        (`sumup_refresh_enqueued_at` cleared); returns the last refresh time."""
        deadline, next_log = time.monotonic() + timeout, time.monotonic() + 5
        bounds = (numbers.start, numbers.stop - 1)
        while True:
            left, queued, last = rows(
                self.conninfo,
                "SELECT count(*) FILTER (WHERE sumup_last_refresh_at IS NULL),"
                " count(*) FILTER (WHERE sumup_refresh_enqueued_at IS NOT NULL),"
                " extract(epoch FROM max(sumup_last_refresh_at))"
                " FROM accounts_artistprofile WHERE id BETWEEN %s AND %s",
                bounds,
            )[0]
            if left == 0 and queued == 0:
                return float(last)
            workers.check_alive()
            check(time.monotonic() < deadline, f"{left} artists not refreshed in {timeout:.0f} s")
            if time.monotonic() >= next_log:
                log(f"  {len(numbers) - left:,} of {len(numbers):,} refreshed")
                next_log += 5
            time.sleep(POLL_S)

    def _verify(self, result: RunResult, numbers: range) -> None:
        stats = self.fake.stats()
        by_user = stats["token_calls_by_user"]
        calls = Counter(by_user.get(email_of(n), {}).get("refresh_token", 0) for n in numbers)
        result.calls_per_artist = {str(k): v for k, v in sorted(calls.items())}
        result.max_token_requests_in_flight = int(stats["max_in_flight"].get("token", 0))
        result.hard_check(
            set(calls) == {1}, f"exactly 1 token call for each of {len(numbers):,} artists"
        )
        bad = rows(
            self.conninfo,
            "SELECT count(*) FROM accounts_artistprofile WHERE id BETWEEN %s AND %s AND NOT"
            " (sumup_connection_status = 'connected' AND sumup_token_version = 1"
            " AND sumup_refresh_claim = '' AND sumup_refresh_enqueued_at IS NULL)",
            (numbers.start, numbers.stop - 1),
        )[0][0]
        result.hard_check(
            bad == 0, f"every artist connected with one new token, unclaimed ({bad} not)"
        )

    def refresh_times(self, numbers: range) -> list[float]:
        found = rows(
            self.conninfo,
            "SELECT extract(epoch FROM sumup_last_refresh_at) FROM accounts_artistprofile"
            " WHERE id BETWEEN %s AND %s ORDER BY 1",
            (numbers.start, numbers.stop - 1),
        )
        return [float(row[0]) for row in found]


# --- the floor: what a refresh cannot avoid --------------------------------------------------

FULL_FLOOR_CALLS, QUICK_FLOOR_CALLS = 2_000, 100
# The token request as accounts.sumup.client sends it (Authlib, client_secret_post): a form
# body with the client's credentials, JSON asked for.
TOKEN_HEADERS = {"Accept": "application/json"}
# Shown in the floor's breakdown, not counted in it: the pairs never touch Redis, so its
# ticks there are its own housekeeping and other clients' commands.
FLOOR_UNTOUCHED = ("redis",)
FLOOR_UPDATE = (
    "UPDATE accounts_artistprofile SET sumup_access_token = %s, sumup_expires_at = %s WHERE id = %s"
)


@dataclass
class FloorResult:
    """CPU of N sequential (token request, UPDATE) pairs for one artist, and how a refresh
    of run A compares with one pair. `*_ms` figures are CPU ms per refresh (or pair):
    `processes` over the named processes a refresh uses (workers, fake, PostgreSQL, Redis,
    driver; the floor's without Redis, which it never touches), `machine` over every
    process on the machine."""

    artist: int
    calls: int
    wall_seconds: float = 0.0
    rotated: int = 0  # answers that carried a new refresh token, chained into the next call
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    floor_ms: dict[str, float] = field(default_factory=dict)
    refresh_ms: dict[str, float] = field(default_factory=dict)  # run A's
    ratio: float = 0.0  # run A's CPU per refresh / the floor's, over the named processes


def cpu_ms(
    cpu_seconds: dict[str, float], count: int, untouched: Sequence[str] = ()
) -> dict[str, float]:
    """CPU ms per item over the named processes but the `untouched` ones, and over the
    whole machine."""
    left_out = {"machine", "other processes", *untouched}
    named = sum(s for name, s in cpu_seconds.items() if name not in left_out)
    return {"processes": named / count * 1000, "machine": cpu_seconds["machine"] / count * 1000}


def floor_token_call(session: requests.Session, url: str, refresh_token: str) -> dict[str, Any]:
    from accounts.sumup.client import TIMEOUT

    response = session.post(
        f"{url}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        headers=TOKEN_HEADERS,
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def measure_floor(bench: Bench, artist: int, calls: int) -> FloorResult:
    """`calls` refreshes of `artist`'s grant reduced to what none can skip: one token
    request over a kept-alive session, then one prepared UPDATE (autocommit) of the row
    with the new access token, encrypted as it is stored, and its expiry. Each call uses
    the refresh token the previous answer returned, so the fake answers every one as
    valid. One pair first, uncounted: the connections and the prepared statement exist
    before the count starts, as they do in a worker that has refreshed before."""
    from accounts.sumup.crypto import decrypt, encrypt

    result = FloorResult(artist, calls)
    stored = rows(
        bench.conninfo,
        "SELECT sumup_refresh_token FROM accounts_artistprofile WHERE id = %s",
        (artist,),
    )
    check(bool(stored), f"artist {artist} is not loaded")
    refresh_token = decrypt(stored[0][0])
    with requests.Session() as session, psycopg.connect(bench.conninfo, autocommit=True) as conn:

        def one_refresh() -> bool:
            """One pair; True if the answer rotated the refresh token."""
            nonlocal refresh_token
            answer = floor_token_call(session, bench.fake.url, refresh_token)
            used = refresh_token
            refresh_token = str(answer.get("refresh_token") or used)
            expires_at = datetime.now(UTC) + timedelta(seconds=answer["expires_in"])
            params = (encrypt(answer["access_token"]), expires_at, artist)
            updated = conn.execute(FLOOR_UPDATE, params, prepare=True).rowcount
            check(updated == 1, f"the floor's UPDATE changed {updated} rows")
            return refresh_token != used

        one_refresh()
        log(f"floor: {calls:,} x (token request + UPDATE) for artist {artist}, in sequence")
        before = cpu_sample([], bench.fake.process.pid)
        started = time.perf_counter()
        result.rotated = sum(one_refresh() for _ in range(calls))
        result.wall_seconds = time.perf_counter() - started
        result.cpu_seconds = cpu_used(before, cpu_sample([], bench.fake.process.pid))
    result.floor_ms = cpu_ms(result.cpu_seconds, calls, untouched=FLOOR_UNTOUCHED)
    return result


def compare_with_floor(floor: FloorResult, run: RunResult) -> None:
    floor.refresh_ms = cpu_ms(run.cpu_seconds, run.artists)
    floor.ratio = floor.refresh_ms["processes"] / floor.floor_ms["processes"]


# --- figures -----------------------------------------------------------------------------------


def throughput_figures(result: RunResult) -> None:
    result.floor_seconds = result.artists * LATENCY_MS / 1000 / result.slots
    result.refreshes_per_second = result.artists / result.wall_seconds
    result.floor_per_second = result.artists / result.floor_seconds
    result.of_floor = result.floor_seconds / result.wall_seconds
    # Little's law: how many slots were, on average, waiting on a token call.
    result.mean_calls_in_flight = result.refreshes_per_second * LATENCY_MS / 1000
    verdict = "met" if result.of_floor >= THROUGHPUT_TARGET else "MISSED"
    result.targets.append(
        f"{result.name}: throughput {result.of_floor:.0%} of the floor's"
        f" (target >= {THROUGHPUT_TARGET:.0%}): {verdict}"
    )


@dataclass
class RateFigures:
    """Token calls against a per-second limit, from one series of call times."""

    source: str
    calls: int
    achieved_per_second: float  # calls in the full seconds after the first call, per second
    overall_per_second: float  # (calls - 1) / (last - first): bursts inflate it
    full_seconds: int
    busiest_window: int  # the most calls in any 1-s window [t, t + 1) starting at a call
    # How late each call reached this view after its grant (the n-th of each, both sorted):
    # p50, p99 and max in ms; the spread between them is what can crowd a window.
    late_ms: tuple[float, float, float] | None = None

    @classmethod
    def of(cls, source: str, times: Sequence[float]) -> RateFigures:
        if not times:
            return cls(source, 0, float("nan"), float("nan"), 0, 0)
        first = times[0]
        full_seconds, achieved = full_seconds_rate(times)
        return cls(
            source,
            len(times),
            achieved,
            (len(times) - 1) / (times[-1] - first) if len(times) > 1 else float("nan"),
            full_seconds,
            busiest_window(times),
        )


@dataclass(frozen=True)
class CallTimes:
    """Three views of the same token calls, each a sorted list of Unix times."""

    grants: Sequence[float]  # the budget's log: when each call was allowed
    arrivals: Sequence[float]  # when each request reached the fake SumUp
    completions: Sequence[float]  # sumup_last_refresh_at: right after each call returned


def rate_figures(result: RunResult, times: CallTimes) -> None:
    """The budget's own log is checked hard (never above the limit in any 1-s window);
    arrivals at the fake, what SumUp's limit would count, are reported as a target beside
    it, with `sumup_last_refresh_at`, to tell an overshoot of the budget itself from one
    made by the delay between a grant and its request."""
    limit = int(result.rate_limit.split("/")[0])
    result.limit_per_second = limit
    at_fake = RateFigures.of("token requests arriving at the fake (checked)", times.arrivals)
    if len(times.grants) == len(times.arrivals):
        at_fake.late_ms = lateness_ms(times.grants, times.arrivals)
    result.rate = [
        at_fake,
        RateFigures.of("budget grants (the limiter's log in Redis)", times.grants),
        RateFigures.of("sumup_last_refresh_at (right after each call)", times.completions),
    ]
    result.hard_check(
        at_fake.calls == result.artists, f"{at_fake.calls} token requests reached the fake"
    )
    granted = result.rate[1]
    result.hard_check(
        granted.busiest_window <= limit,
        f"busiest 1-s window of budget grants {granted.busiest_window}, limit {limit}",
    )
    # Where a request lands after its grant depends on the machine's scheduling (a
    # saturated 2-core box delays some by 100 ms), so the SumUp-side view is a target.
    result.targets.append(
        f"{result.name}: busiest 1-s window at the fake {at_fake.busiest_window} calls "
        f"(limit {limit}): {'met' if at_fake.busiest_window <= limit else 'MISSED'}"
    )
    achieved = at_fake.achieved_per_second
    close = abs(achieved - limit) <= RATE_TOLERANCE * limit
    result.targets.append(
        f"{result.name}: {achieved:.2f}/s at the fake over {at_fake.full_seconds} full seconds"
        f" (target {limit}/s +/- {RATE_TOLERANCE:.0%}): {'met' if close else 'MISSED'}"
    )


# --- report ------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    started_at: str
    postgres: str
    cpus: int
    latency_ms: int
    workers: int
    pool: str
    concurrency: int
    setup_seconds: dict[str, float] = field(default_factory=dict)
    runs: list[RunResult] = field(default_factory=list)
    floor: FloorResult | None = None


def run_lines(run: RunResult) -> list[str]:
    lines = [
        f"{run.name}: {run.artists:,} artists, budget {run.rate_limit}, {run.slots} slots",
        f"  sweep enqueue            {run.enqueue_seconds:10.2f} s",
        f"  wall (sweep -> last)     {run.wall_seconds:10.2f} s",
    ]
    if run.floor_seconds:
        lines += [
            f"  floor N x {LATENCY_MS} ms / slots   {run.floor_seconds:10.2f} s"
            f"   wall / floor {run.wall_seconds / run.floor_seconds:6.2f}x",
            f"  refreshes per second     {run.refreshes_per_second:10.1f}"
            f"     floor {run.floor_per_second:8.1f}/s   -> {run.of_floor:6.1%} of the floor's",
            f"  slots waiting on SumUp   {run.mean_calls_in_flight:10.1f}"
            f"     of {run.slots} (mean, Little's law); max token requests in flight"
            f" at the fake {run.max_token_requests_in_flight}",
        ]
    for rate in run.rate:
        lines += [
            f"  {rate.source}:",
            f"    achieved rate          {rate.achieved_per_second:10.2f}/s"
            f"  over {rate.full_seconds} full seconds (first to last call:"
            f" {rate.overall_per_second:.2f}/s)",
            f"    busiest 1-s window     {rate.busiest_window:10d} calls"
            f"  (limit {run.limit_per_second})",
        ]
        if rate.late_ms:
            p50, p99, worst = rate.late_ms
            lines.append(
                f"    after its grant        {p50:10.1f} ms p50, {p99:.1f} ms p99,"
                f" {worst:.1f} ms max"
            )
    calls = ", ".join(f"{k} call: {v:,} artists" for k, v in run.calls_per_artist.items())
    lines.append(f"  token calls per artist   {calls}")
    lines.append(
        "  task outcomes            " + ", ".join(f"{k}={v:,}" for k, v in run.outcomes.items())
    )
    lines.append(cpu_line(run.cpu_seconds, run.artists, run.wall_seconds))
    return lines


def cpu_line(
    cpu_seconds: dict[str, float], count: int, wall_seconds: float, per: str = "refresh"
) -> str:
    capacity = (os.cpu_count() or 1) * wall_seconds
    machine = cpu_seconds.get("machine", 0.0)
    parts = ", ".join(
        f"{name} {seconds / count * 1000:.2f}"
        for name, seconds in cpu_seconds.items()
        if name != "machine"
    )
    return (
        f"  CPU ms per {per:<14}{machine / count * 1000:10.2f}"
        f"  ({parts}); machine busy {machine / capacity:.0%} of {os.cpu_count()} CPUs"
    )


def floor_lines(floor: FloorResult) -> list[str]:
    refresh, least = floor.refresh_ms, floor.floor_ms
    lines = [
        f"Floor: {floor.calls:,} x (one token request + one UPDATE) for artist {floor.artist},"
        " in sequence from this process",
        f"  wall                     {floor.wall_seconds:10.2f} s"
        f"   ({floor.wall_seconds / floor.calls * 1000:.1f} ms a pair;"
        f" {floor.rotated:,} refresh tokens rotated and chained)",
        cpu_line(floor.cpu_seconds, floor.calls, floor.wall_seconds, per="pair"),
        "",
        f"CPU ms per refresh {refresh['processes']:.2f} (all processes) vs floor"
        f" {least['processes']:.2f} (one token request + one UPDATE): {floor.ratio:.1f}x",
        "  (workers, fake SumUp, PostgreSQL, Redis and this driver; the floor without Redis,"
        f" which it never touches; the whole machine: {refresh['machine']:.2f}"
        f" vs {least['machine']:.2f})",
    ]
    # Others' work on the machine also lands in the shared processes (their sessions on
    # the PostgreSQL server), so busy neighbours make the floor read high.
    others = floor.cpu_seconds.get("other processes", 0.0) / floor.calls * 1000
    if others > least["processes"]:
        lines.append(
            f"  the machine was busy: other processes used {others:.2f} ms per pair during"
            " the floor, more than the floor itself; it may read high"
        )
    return lines


def render(result: BenchResult) -> str:
    lines = [
        f"Scheduled SumUp token refresh: {result.workers} x `celery -A jobs worker --pool"
        f" {result.pool} --concurrency {result.concurrency}`, fake SumUp answering in"
        f" {result.latency_ms} ms, PostgreSQL {result.postgres}, {result.cpus} CPUs",
        "",
    ]
    for run in result.runs:
        lines += [*run_lines(run), ""]
    if result.floor:
        lines += [*floor_lines(result.floor), ""]
    lines.append("setup: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.setup_seconds.items()))
    lines.append("checks (hard):")
    lines += [f"  {line}" for run in result.runs for line in run.checks]
    lines.append("targets:")
    lines += [f"  {line}" for run in result.runs for line in run.targets]
    return "\n".join(lines)


# --- the whole benchmark ------------------------------------------------------------------------


def configure_environment(server: str, fake_url: str) -> None:
    """Settings for this process and, inherited, for the workers: all from the environment."""
    from cryptography.fernet import Fernet

    os.environ.update(production_stand_ins(CLIENT_ID))  # DEBUG off: no query log
    os.environ.update(
        DJANGO_SETTINGS_MODULE="events.settings",
        DATABASE_URL=f"{server}/{DB_NAME}",
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=REDIS_URL,
        CELERY_RESULT_BACKEND=REDIS_URL,
        SUMUP_BASE_URL=fake_url,
        SUMUP_API_URL=f"{fake_url}/v0.1",
        SUMUP_CLIENT_ID=CLIENT_ID,
        SUMUP_CLIENT_SECRET=CLIENT_SECRET,
        SUMUP_TOKEN_KEYS=Fernet.generate_key().decode(),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(WEBAPP_DIR))
    django.setup()


def migrate() -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    try:
        call_command("migrate", interactive=False, verbosity=1, stdout=out, stderr=out)
    except Exception as exc:
        raise BenchError(f"migrate failed: {exc!r}\n{out.getvalue()}") from exc


def run_bench(args: argparse.Namespace, stack: contextlib.ExitStack) -> BenchResult:
    server = args.server
    result = BenchResult(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        postgres=str(rows(f"{server}/postgres", "SHOW server_version")[0][0]),
        cpus=os.cpu_count() or 1,
        latency_ms=LATENCY_MS,
        workers=WORKERS,
        pool=args.pool,
        concurrency=args.concurrency,
    )
    logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-refresh-")))
    run_a = range(1, args.artists + 1)
    run_b = range(run_a.stop, run_a.stop + args.rate_artists)
    fake = FakeProcess(seed_users=run_b.stop - 1, logs=logs)
    stack.callback(fake.stop)
    configure_environment(server, fake.url)
    create_database(server, DB_NAME)
    stack.callback(drop_bench_database, server)
    stack.callback(flush_bench_redis)
    with timed(result.setup_seconds, "migrate"):
        migrate()
    with timed(result.setup_seconds, "mint_grants"):
        grants = mint_grants(fake.url, list(run_a) + list(run_b))
    bench = Bench(server, fake, logs, args.pool, args.concurrency)
    with timed(result.setup_seconds, "load_run_a"):
        load_artists(bench.conninfo, {n: grants[n] for n in run_a})
    run = bench.run("Run A (budget above need)", "a", run_a, FAST_RATE)
    throughput_figures(run)
    result.runs.append(run)
    # After run A, whose checks counted one token call per artist, on one of its artists:
    # the row was just refreshed and is not due again while run B goes on.
    result.floor = measure_floor(bench, run_a.start, args.floor_calls)
    compare_with_floor(result.floor, run)
    # Loaded only now: during run A these artists would have been due too.
    with timed(result.setup_seconds, "load_run_b"):
        load_artists(bench.conninfo, {n: grants[n] for n in run_b})
    budget = BudgetLog(SLOW_RATE)
    run = bench.run(f"Run B (budget {SLOW_RATE})", "b", run_b, SLOW_RATE, budget)
    times = CallTimes(budget.times(), fake.arrivals(run.started_at), bench.refresh_times(run_b))
    rate_figures(run, times)
    result.runs.append(run)
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="300 + 150 artists, a floor of 100 (CI smoke)"
    )
    parser.add_argument("--artists", type=int, default=FULL_ARTISTS, help="run A's artists")
    parser.add_argument(
        "--rate-artists", type=int, default=FULL_RATE_ARTISTS, help="run B's artists"
    )
    parser.add_argument(
        "--floor-calls", type=int, default=FULL_FLOOR_CALLS, help="the floor's request pairs"
    )
    parser.add_argument("--pool", default=POOL, choices=["threads", "prefork", "solo"])
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="slots per worker")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    args = parser.parse_args(argv)
    if args.quick:
        args.artists, args.rate_artists = QUICK_ARTISTS, QUICK_RATE_ARTISTS
        args.floor_calls = QUICK_FLOOR_CALLS
    if args.artists < 1 or args.rate_artists < 2 or args.floor_calls < 1:
        parser.error("--artists and --floor-calls must be at least 1 and --rate-artists at least 2")
    args.server = args.server.rstrip("/")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
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
    write_json(RESULTS_FILE, asdict(result))
    print(render(result))
    print(f"\nwritten: {RESULTS_FILE.relative_to(PROJECT_DIR)}")
    return 1 if any(run.failed for run in result.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
