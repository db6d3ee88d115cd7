"""Measure the SumUp token-refresh sweep as the number of connected artists grows.

Run:  .venv/bin/python bench/refresh_scale_bench.py [--sizes 10000,100000,1000000]
      [--due-fraction 0.0833] [--steady-seconds 90] [--quick]
(--quick: 10,000 artists only, a smoke run; --steady-seconds 0: without the real system.)

For each size N, a throwaway PostgreSQL database `bench_refresh_scale` (migrated once,
emptied between sizes) holds N connected artists loaded with COPY, tokens encrypted as the
app stores them. A share of them (`--due-fraction`) have an access token expiring inside
the refresh window; the rest expire half an hour or more from now, so they stay fresh
however long the load takes. Expiry times are spread over the rows independently of their
ids, as sign-ups and refreshes leave them.

Each size is measured twice: with that share due, then with every artist fresh (the due
rows moved out of the window). In both states:
- `EXPLAIN (ANALYZE, BUFFERS)` of the sweep's claim query (`sweep._claimable`, ordered and
  locked as `_claim_batch` runs it, one ENQUEUE_BATCH): whether the due condition narrows
  an index scan (Index Cond) or is checked row by row (Filter), and the rows it threw away;
- `refresh.due_profiles(now).count()`;
- `run_sweep(exclusive=False)` in this process with the default budget and no worker:
  it claims and queues one LOOKAHEAD of paced slots and starts the dispatcher chain;
- this process's peak RSS during the sweep (the high-water mark is reset just before it,
  so loading the rows does not count), and, after it, the broker's queue length and
  memory. The broker is a private `redis-server`, so nothing else shares its figures.

Nothing in those two states calls SumUp. Then, per size, the real system at work on the
same table (`measure_steady`): a fake SumUp answering in 100 ms (`python -m fakes.sumup`),
the Procfile's worker twice (each named after its number, as two machines would be) and
its beat, all with this process's environment, the default budget (20/s, the sweep's
paced share 18/s) and SUMUP_REFRESH_SWEEP_INTERVAL shortened to 20 s so that beat sweeps
several times in the phase. Only the artists the phase can serve have real grants at the
fake (registered and minted over its control API), stored encrypted in their rows; they
fall due one after another at 1.2 times the paced share from the phase's start, so due
work never runs out, and every other artist's next refresh is moved beyond the phase. No
trigger of ours: beat's sweeps and the dispatcher hand out the work. After the first
refresh and a warm-up, a window (`--steady-seconds`) measures refreshes per second (from
the rows' `sumup_last_refresh_at`) against the paced share, the budget's refusals (the
outcome counts accounts.sumup.refresh_outcomes keeps in Redis), token calls per artist at
the fake and deliveries per artist in the workers' logs (JSON: Celery's task lines carry
the artist), the broker's queue (LLEN, and with kombu's unacked hash, the work workers
hold) and used_memory every 0.5 s, and, at its end, the peak RSS (VmHWM) of each worker
with its pool and of beat, and how busy the machine was.

The figures go to bench/results/refresh_scale.json, merged by size, so sizes measured by
separate runs sit side by side.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import gc
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
import redis
import requests

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
# Run as a script, only bench/ is on sys.path; the shared helpers live in bench.common.
sys.path.insert(0, str(PROJECT_DIR))

from bench.common import (  # noqa: E402
    DEFAULT_SERVER,
    VENV_BIN,
    BenchError,
    PrivateRedis,
    check,
    configure_refresh_process,
    create_database,
    drop_database,
    log,
    on_terminate,
    production_stand_ins,
    timed,
    write_json,
)
from bench.token_refresh_bench import (  # noqa: E402
    MINT_THREADS,
    POLL_S,
    WORKER_READY_S,
    FakeProcess,
    copy_rows,
    cpu_sample,
    cpu_used,
    descendants,
    email_of,
    migrate,
    mint_grants,
    proc_stats,
    profile_row,
    user_row,
)
from tests.support.procfile import ProcfileProcess, read_procfile  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "refresh_scale.json"
DB_NAME = "bench_refresh_scale"
CLIENT_ID = "jersey-events-local"
CELERY_QUEUE = "celery"  # the default queue, where the sweep's tasks go

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_DUE_FRACTION = 1 / 12  # the share issue-sized runs use: 5 minutes of 1-hour tokens
COPY_CHUNK = 20_000  # rows built, encrypted and copied per transaction
# Seconds from now at which loaded access tokens expire: due ones inside the refresh
# window (600 s by default), fresh ones far enough out that a load of minutes leaves them
# fresh, up to a one-hour token's life.
DUE_EXPIRY = (30.0, 570.0)
FRESH_EXPIRY = (1_800.0, 3_600.0)
KNUTH = 2_654_435_761  # multiplicative hash: spreads expiries over ids without correlation


def expiry_offset(n: int, due_fraction: float) -> tuple[bool, float]:
    """Whether artist `n` is due, and when (seconds from now) its access token expires."""
    u = (n * KNUTH % 2**32) / 2**32
    if u < due_fraction:
        low, high = DUE_EXPIRY
        return True, low + (high - low) * u / due_fraction
    low, high = FRESH_EXPIRY
    return False, low + (high - low) * (u - due_fraction) / (1 - due_fraction)


# --- setup ----------------------------------------------------------------------------------


def artist_chunks(size: int) -> Iterator[range]:
    for start in range(1, size + 1, COPY_CHUNK):
        yield range(start, min(start + COPY_CHUNK, size + 1))


def profile(n: int, due_fraction: float, now: datetime) -> dict[str, Any]:
    """A connected artist as the refresh policy leaves one whose token the platform uses
    (accounts.sumup.refresh_policy): its next refresh `SUMUP_REFRESH_WINDOW` before its
    access token expires."""
    from accounts.sumup.refresh_policy import next_due

    grant = {
        "access_token": f"bench-access-{n}",
        "refresh_token": f"bench-refresh-{n}",
        "scope": "payments transactions.history user.app-settings user.profile_readonly",
    }
    _, offset = expiry_offset(n, due_fraction)
    row = profile_row(n, grant, now)
    expires_at = now + timedelta(seconds=offset)
    due_at = next_due(
        expires_at=expires_at,
        refresh_token_issued_at=row["sumup_refresh_token_issued_at"],
        used_at=now,
        now=now,
    )
    return {
        **row,
        "sumup_expires_at": expires_at,
        "sumup_token_used_at": now,
        "sumup_refresh_due_at": due_at,
    }


def load_artists(conninfo: str, size: int, due_fraction: float) -> dict[str, float]:
    """Empty the artist tables, COPY `size` connected artists, VACUUM (ANALYZE) them.
    Returns the seconds spent building rows (encrypting tokens), copying and vacuuming."""
    now = datetime.now(UTC)
    seconds = {"build_rows": 0.0, "copy": 0.0}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE accounts_artistprofile, accounts_user CASCADE")
    with psycopg.connect(conninfo) as conn:
        for numbers in artist_chunks(size):
            started = time.perf_counter()
            users = [user_row(n, now) for n in numbers]
            profiles = [profile(n, due_fraction, now) for n in numbers]
            built = time.perf_counter()
            with conn.cursor() as cur:
                copy_rows(cur, "accounts_user", users)
                copy_rows(cur, "accounts_artistprofile", profiles)
            conn.commit()
            seconds["build_rows"] += built - started
            seconds["copy"] += time.perf_counter() - built
    with psycopg.connect(conninfo, autocommit=True) as conn, timed(seconds, "vacuum_analyze"):
        conn.execute("VACUUM (ANALYZE) accounts_user, accounts_artistprofile")
    return seconds


def make_all_fresh(conninfo: str) -> None:
    """Move every due artist's expiry out of the refresh window, with its next refresh,
    and forget the sweep's queue marks, as if each had just been refreshed."""
    from django.conf import settings

    low, high = FRESH_EXPIRY
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE accounts_artistprofile SET sumup_refresh_enqueued_at = NULL,"
            " sumup_expires_at = now() + make_interval(secs => %s + (id %% 1000) * %s)"
            " WHERE sumup_expires_at <= now() + make_interval(secs => %s)",
            (low, (high - low) / 1000, settings.SUMUP_REFRESH_WINDOW + 60),
        )
        conn.execute(
            "UPDATE accounts_artistprofile"
            " SET sumup_refresh_due_at = sumup_expires_at - make_interval(secs => %s)"
            " WHERE sumup_refresh_due_at <= now() + make_interval(secs => 60)",
            (settings.SUMUP_REFRESH_WINDOW,),
        )
        conn.execute("VACUUM (ANALYZE) accounts_artistprofile")


def table_bytes(conninfo: str) -> dict[str, int]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_table_size(t), pg_indexes_size(t), pg_total_relation_size(t)"
            " FROM (SELECT 'accounts_artistprofile'::regclass AS t) AS one"
        ).fetchone()
    assert row is not None
    return {"table": row[0], "indexes": row[1], "total": row[2]}


# --- the claim query's plan -------------------------------------------------------------------


@dataclass
class PlanSummary:
    path: str  # node types from the top down the first child: Limit > LockRows > ...
    scan: str  # how accounts_artistprofile is read
    index_cond: str
    filter: str
    due_condition_in: str  # "Index Cond", "Filter" or "neither"
    rows_returned: int
    rows_removed_by_filter: int
    shared_hit: int
    shared_read: int
    planning_ms: float
    execution_ms: float
    plan: list[Any] = field(default_factory=list)  # EXPLAIN's own JSON


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def summarize(plan: list[Any]) -> PlanSummary:
    top = plan[0]
    root = top["Plan"]
    nodes = list(plan_nodes(root))
    path: list[str] = []
    node = root
    while True:
        path.append(node["Node Type"])
        if not node.get("Plans"):
            break
        node = node["Plans"][0]
    scans = [n for n in nodes if n.get("Relation Name") or n.get("Index Name")]
    scan = " + ".join(
        n["Node Type"] + (f" using {n['Index Name']}" if n.get("Index Name") else "") for n in scans
    )
    index_cond = " ".join(n.get("Index Cond", "") for n in nodes).strip()
    filters = " ".join(n.get("Filter", "") for n in nodes).strip()
    due = "sumup_refresh_due_at <="  # how PostgreSQL prints the due condition's bound
    placed = "Index Cond" if due in index_cond else "Filter" if due in filters else "neither"
    return PlanSummary(
        path=" > ".join(path),
        scan=scan,
        index_cond=index_cond,
        filter=filters,
        due_condition_in=placed,
        rows_returned=int(root.get("Actual Rows", 0)),
        rows_removed_by_filter=sum(int(n.get("Rows Removed by Filter", 0)) for n in nodes),
        shared_hit=int(root.get("Shared Hit Blocks", 0)),
        shared_read=int(root.get("Shared Read Blocks", 0)),
        planning_ms=float(top.get("Planning Time", 0.0)),
        execution_ms=float(top.get("Execution Time", 0.0)),
        plan=plan,
    )


def explain_claim() -> PlanSummary:
    """EXPLAIN (ANALYZE, BUFFERS) of the sweep's claim query as `_claim_batch` sends it,
    in a transaction rolled back after (the rows it locks are let go)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.sumup import sweep

    with transaction.atomic():
        claim = (
            sweep._claimable(timezone.now())
            .order_by("sumup_refresh_due_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[: sweep.ENQUEUE_BATCH]
        )
        query, params = claim.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}", params)
            row = cursor.fetchone()
        transaction.set_rollback(True)
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return summarize(plan)


# --- the sweep ---------------------------------------------------------------------------------


def status_kib(name: str, pid: int | str = "self") -> int:
    """A field of /proc/<pid>/status in KiB (VmRSS: now; VmHWM: the high-water mark)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise BenchError(f"no {name} in /proc/{pid}/status")


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux 4.0+), so getrusage's
    ru_maxrss after a step is that step's peak; False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss <= status_kib("VmRSS") + 1024


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def clear_broker(client: redis.Redis) -> None:
    """Empty the private Redis except kombu's queue bindings: this process's producer
    declared the queue once and will not again, and without its binding a message would
    be routed to the undeliverable queue instead of "celery"."""
    for key in client.scan_iter(count=1000):
        if not key.startswith(b"_kombu.binding."):
            client.delete(key)


@dataclass
class StateResult:
    """One state of the table (due share, or nothing due): the figures for it."""

    due_rows: int = 0
    count_ms: float = 0.0
    claim: PlanSummary | None = None
    sweep_seconds: float = 0.0
    enqueued: int = 0
    more_due: bool = False
    skipped: str = ""
    rss_before_mib: float = 0.0
    peak_rss_mib: float = 0.0
    peak_rss_reset: bool = False  # False: the peak includes everything before the sweep
    queue_length: int = 0
    redis_used_before_mib: float = 0.0
    redis_used_after_mib: float = 0.0
    bytes_per_queued_task: float = 0.0  # the growth of used_memory, per task queued
    queue_bytes: int = 0  # MEMORY USAGE of the queue's list alone


def measure_state(client: redis.Redis) -> StateResult:
    from django.utils import timezone

    from accounts.sumup import refresh
    from accounts.sumup.sweep import run_sweep

    result = StateResult()
    clear_broker(client)
    result.claim = explain_claim()
    started = time.perf_counter()
    result.due_rows = refresh.due_profiles(timezone.now()).count()
    result.count_ms = (time.perf_counter() - started) * 1000
    used_before = used_memory(client)
    gc.collect()
    result.rss_before_mib = status_kib("VmRSS") / 1024
    result.peak_rss_reset = reset_peak_rss()
    started = time.perf_counter()
    report = run_sweep(exclusive=False)
    result.sweep_seconds = time.perf_counter() - started
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.enqueued, result.more_due = len(report.enqueued), report.more_due
    result.skipped = report.skipped
    result.queue_length = cast(int, client.llen(CELERY_QUEUE))
    used_after = used_memory(client)
    result.redis_used_before_mib = used_before / 2**20
    result.redis_used_after_mib = used_after / 2**20
    result.queue_bytes = cast(int | None, client.memory_usage(CELERY_QUEUE, samples=0)) or 0
    if result.queue_length:
        result.bytes_per_queued_task = (used_after - used_before) / result.queue_length
    return result


# --- the steady state, with the real system ---------------------------------------------------

STEADY_SECONDS = 90.0  # of steady state measured, after the warm-up
STEADY_WARMUP = 10.0  # seconds from the first refresh to the window's start
# SUMUP_REFRESH_SWEEP_INTERVAL for the phase (the default, 120 s, would sweep about once
# in it): beat sweeps several times, and one interval of work is a stricter bound.
STEADY_SWEEP_INTERVAL = 20  # seconds
STEADY_LATENCY_MS = 100  # the fake's answer time for every call
STEADY_WORKERS = 2  # the Procfile's worker, twice, each with its WORKER_CONCURRENCY pool
# Artists fall due at this multiple of the paced share for as long as a warm-up and the
# window last: due work piles up faster than the budget serves it, so it never runs out
# in the window (the excess also covers a late first sweep) and the window sees the
# system serve as fast as the budget lets it.
DUE_RATE_MARGIN = 1.2
FIRST_REFRESH_WITHIN = 90.0  # seconds: the workers' start-up and beat's first sweep
SAMPLE_EVERY = 0.5  # seconds between samples of the broker
UNACKED_KEY = "unacked"  # kombu's Redis transport: delivered messages not yet acknowledged
PROBLEMS_KEPT = 20  # warning and error lines of the processes kept in the results
LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"  # logging's asctime, as the JSON lines carry it


class SteadyFake(FakeProcess):
    """`python -m fakes.sumup` as it is, answering in STEADY_LATENCY_MS, on a port it
    picks; it knows the stand-in client secret the workers send."""

    def __init__(self, logs: Path) -> None:
        # Not FakeProcess's own start, which adds an arrivals log at another latency.
        self.log_path = logs / "fake.log"
        self.stderr = self.log_path.open("wb")
        secret = production_stand_ins(CLIENT_ID)["SUMUP_CLIENT_SECRET"]
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "fakes.sumup", "--port", "0"),
                *("--latency-ms", str(STEADY_LATENCY_MS)),
                *("--client-id", CLIENT_ID, "--client-secret", secret),
            ],
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
        )
        self.url = self._read_url()

    def token_calls(self) -> int:
        return int(self.stats()["token_calls"]["total"])


def register_users(url: str, numbers: Sequence[int]) -> None:
    """The fake's users for these artists only, each owning its merchant as `--seed-users`
    makes them: a user for every row would put a million users in the fake's memory."""
    local = threading.local()

    def add(n: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        merchant = {"code": f"MFK{n:05d}", "name": f"Fake Merchant {n}"}
        response = local.session.post(
            f"{url}/_fake/users", json={"email": email_of(n), "merchants": [merchant]}, timeout=10
        )
        response.raise_for_status()

    with ThreadPoolExecutor(MINT_THREADS) as pool:
        list(pool.map(add, numbers))


def phase_numbers(size: int, count: int) -> list[int]:
    """`count` artists spread evenly over ids 1..size: rows all over the table."""
    count = min(count, size)
    return [1 + i * size // count for i in range(count)]


def schedule_phase(conninfo: str, grants: dict[int, dict[str, Any]], due_every: float) -> None:
    """Give the phase's artists their real grants, encrypted as the app stores them, and
    next refreshes `due_every` seconds apart from now, in an order unrelated to their ids
    (expiring `SUMUP_REFRESH_WINDOW` after, as the policy has it for an active artist);
    move every other artist's next refresh, and expiry, to well after the phase."""
    from django.conf import settings

    from accounts.sumup.crypto import encrypt

    window = settings.SUMUP_REFRESH_WINDOW
    numbers = list(grants)
    random.Random(len(numbers)).shuffle(numbers)
    beyond = len(numbers) * due_every + 600.0  # seconds from now
    now = datetime.now(UTC)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE accounts_artistprofile SET sumup_refresh_enqueued_at = NULL,"
            " sumup_refresh_due_at = now() + make_interval(secs => %s + id %% 600),"
            " sumup_expires_at = now() + make_interval(secs => %s + id %% 600)"
            " WHERE sumup_refresh_due_at <= now() + make_interval(secs => %s)",
            (beyond, beyond + window, beyond),
        )
        conn.execute(
            "UPDATE accounts_artistprofile AS p SET sumup_access_token = v.access,"
            " sumup_refresh_token = v.refresh, sumup_refresh_due_at = v.due,"
            " sumup_expires_at = v.due + make_interval(secs => %s), sumup_token_used_at = now(),"
            " sumup_connection_status = 'connected', sumup_token_version = 0,"
            " sumup_refresh_claim = '', sumup_refresh_claimed_until = NULL,"
            " sumup_refresh_enqueued_at = NULL, sumup_last_refresh_at = NULL"
            " FROM unnest(%s::integer[], %s::text[], %s::text[], %s::timestamptz[])"
            " AS v(id, access, refresh, due) WHERE p.id = v.id",
            (
                window,
                numbers,
                [encrypt(grants[n]["access_token"]) for n in numbers],
                [encrypt(grants[n]["refresh_token"]) for n in numbers],
                [now + timedelta(seconds=j * due_every) for j in range(len(numbers))],
            ),
        )
        conn.execute("ANALYZE accounts_artistprofile")
        row = conn.execute(
            "SELECT count(*) FROM accounts_artistprofile"
            " WHERE sumup_refresh_due_at <= now() + make_interval(secs => %s)",
            (beyond,),
        ).fetchone()
    found = row[0] if row else 0
    check(found == len(numbers), f"{found} artists due in the phase, {len(numbers)} scheduled")


def tree_peak_rss_mib(root: int) -> float:
    """VmHWM summed over a process and its descendants (a worker and its pool). Pages a
    pool process shares with its parent count in each, as VmHWM counts them."""
    total = 0
    for pid in descendants(proc_stats(), [root]):
        with contextlib.suppress(OSError, BenchError):  # gone meanwhile
            total += status_kib("VmHWM", pid)
    return total / 1024


class BrokerSamples:
    """The broker's LLEN of the queue (work waiting for a worker) and HLEN of kombu's
    unacked hash (work a worker holds: a countdown waiting, a task running), read in one
    transaction, and its used_memory."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2)
        self.samples: list[tuple[float, int, int, int]] = []

    def sample(self) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.llen(CELERY_QUEUE)
        pipe.hlen(UNACKED_KEY)
        waiting, held = pipe.execute()
        self.samples.append((time.time(), waiting, held, used_memory(self.client)))


class DatabaseCpu:
    """CPU seconds of the PostgreSQL backends serving the bench database (the server's
    other sessions are others' work), from /proc. Each backend is followed from sample to
    sample, so one that ends between two (a worker's connection past its maximum age)
    keeps what it had used by the last."""

    def __init__(self) -> None:
        self.marker = f" {DB_NAME} ".encode()
        self.seen: dict[int, float] = {}

    def sample(self) -> None:
        for pid, stat in proc_stats().items():
            if stat.comm == "postgres" and (pid in self.seen or self._ours(pid)):
                self.seen[pid] = stat.own

    def _ours(self, pid: int) -> bool:
        try:
            return self.marker in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def used_since(self, mark: dict[int, float]) -> float:
        """CPU seconds since `mark` (a copy of `seen` taken then)."""
        return sum(cpu - mark.get(pid, 0.0) for pid, cpu in self.seen.items())


class Sampler(threading.Thread):
    """Calls each `sample()` every SAMPLE_EVERY seconds until stopped."""

    def __init__(self, *sources: BrokerSamples | DatabaseCpu) -> None:
        super().__init__(name="sampler", daemon=True)
        self.sources = sources
        self.halt = threading.Event()

    def run(self) -> None:
        while True:
            for source in self.sources:
                source.sample()
            if self.halt.wait(SAMPLE_EVERY):
                return

    def stop(self) -> None:
        self.halt.set()
        if self.is_alive():
            self.join()


def steady_env(fake_url: str) -> dict[str, str]:
    """This process's environment (the private Redis, the bench database, DEBUG off), with
    SumUp at the fake, the phase's sweep interval, JSON logs (Celery's task lines carry
    the task's arguments there), and the budget and the pool at their defaults."""
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
        "SUMUP_BASE_URL": fake_url,
        "SUMUP_API_URL": f"{fake_url}/v0.1",
        "SUMUP_REFRESH_SWEEP_INTERVAL": str(STEADY_SWEEP_INTERVAL),
        "LOG_FORMAT": "json",
    }
    for name in ("SUMUP_API_RATE_LIMIT", "WORKER_CONCURRENCY"):
        env.pop(name, None)
    return env


def stop_all(processes: Sequence[ProcfileProcess]) -> None:
    """Warm shutdowns at once, then each waited for (and killed past its timeout)."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.stop()


def check_alive(processes: Sequence[ProcfileProcess]) -> None:
    dead = [process for process in processes if not process.is_alive()]
    check(not dead, "exited:\n" + "\n".join(process.log_tail() for process in dead))


@dataclass
class PhaseProcesses:
    """The Procfile's worker, STEADY_WORKERS times, and its beat, each its own process
    group. Each worker is named after its number, as separate machines would name them."""

    workers: list[ProcfileProcess]
    beat: ProcfileProcess

    @classmethod
    def start(cls, env: dict[str, str], logs: Path, stack: contextlib.ExitStack) -> PhaseProcesses:
        commands = read_procfile()
        started: list[ProcfileProcess] = []
        stack.callback(stop_all, started)
        for i in range(1, STEADY_WORKERS + 1):
            command = f"{commands['worker']} -n {worker_name(i)}"
            started.append(ProcfileProcess(f"worker-{i}", command, env, logs / f"worker-{i}.log"))
        started.append(ProcfileProcess("beat", commands["beat"], env, logs / "beat.log"))
        return cls(started[:-1], started[-1])

    @property
    def everyone(self) -> list[ProcfileProcess]:
        return [*self.workers, self.beat]

    def check_alive(self) -> None:
        check_alive(self.everyone)

    def wait_ready(self) -> None:
        from jobs import app

        names = {worker_name(i) for i in range(1, len(self.workers) + 1)}
        deadline = time.monotonic() + WORKER_READY_S
        while True:
            self.check_alive()
            replies = app.control.ping(destination=sorted(names), timeout=1.0) or []
            if {name for reply in replies for name in reply} >= names:
                return
            check(time.monotonic() < deadline, f"workers not ready in {WORKER_READY_S:.0f} s")

    def sleep_until(self, moment: float) -> None:
        """Wait until the Unix time `moment`, failing as soon as a process dies."""
        while (left := moment - time.time()) > 0:
            self.check_alive()
            time.sleep(min(left, 1.0))

    def log_tails(self) -> str:
        return "\n".join(process.log_tail(15) for process in self.everyone)


def worker_name(i: int) -> str:
    return f"worker-{i}@{os.uname().nodename}"


def first_refresh(conninfo: str, numbers: Sequence[int]) -> float | None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM min(sumup_last_refresh_at)) FROM accounts_artistprofile"
            " WHERE id = ANY(%s)",
            (list(numbers),),
        ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def refreshed_between(conninfo: str, numbers: Sequence[int], since: float, until: float) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM accounts_artistprofile WHERE id = ANY(%s)"
            " AND sumup_last_refresh_at >= to_timestamp(%s)"
            " AND sumup_last_refresh_at < to_timestamp(%s)",
            (list(numbers), since, until),
        ).fetchone()
    return int(row[0]) if row else 0


def outcome_totals(client: redis.Redis) -> Counter[str]:
    """Every outcome counted so far (accounts.sumup.refresh_outcomes' hourly hashes, which
    no sweep clears): the difference of two readings is what ended in between."""
    from accounts.sumup.refresh_outcomes import HOUR_KEY

    totals: Counter[str] = Counter()
    for key in client.scan_iter(HOUR_KEY.format(hour="*")):
        for name, value in cast(dict[bytes, bytes], client.hgetall(key)).items():
            totals[name.decode().partition("@")[0]] += int(value)
    return totals


def difference(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {name: n for name, n in sorted((after - before).items()) if n}


@dataclass(frozen=True)
class TaskRun:
    """One run of a queued refresh, from its log line: when it started (Unix), how long
    after the budget's slot it booked (seconds; None without one), and how it ended."""

    started: float
    late: float | None
    outcome: str


@dataclass
class TaskLog:
    """What the processes' JSON logs say about queued refreshes."""

    deliveries: Counter[int] = field(default_factory=Counter)  # refresh_artist received
    outcomes: dict[int, Counter[str]] = field(default_factory=dict)  # what each returned
    runs: list[TaskRun] = field(default_factory=list)
    sweeps: list[str] = field(default_factory=list)  # the sweep's summary lines
    problems: list[str] = field(default_factory=list)  # warnings and errors, until `until`
    at_shutdown: list[str] = field(default_factory=list)  # and after it


def logged_at(record: dict[str, Any]) -> float:
    """A JSON log line's time (logging's asctime, local), Unix; 0 if it has none."""
    try:
        return datetime.strptime(str(record.get("time")), LOG_TIME).timestamp()
    except ValueError:
        return 0.0


def read_logs(paths: Sequence[Path], until: float) -> TaskLog:
    """The refresh tasks' deliveries and outcomes, the sweep's summaries, and the
    warnings and errors logged until `until` (the window's end) and after it (stopping)."""
    from accounts.sumup.sweep import REFRESH_TASK

    found = TaskLog()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # Celery's banner, written before logging is configured
            if not isinstance(record, dict):
                continue
            message = str(record.get("message", ""))
            if record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                problems = found.problems if logged_at(record) <= until else found.at_shutdown
                problems.append(f"{path.stem}: {record['level']} {message[:300]}")
            if message.startswith("SumUp refresh sweep:"):
                found.sweeps.append(message)
            data = record.get("data")
            if not isinstance(data, dict) or data.get("name") != REFRESH_TASK:
                continue
            args = ast.literal_eval(str(data["args"]))
            artist = int(args[0])
            if "return_value" in data:
                outcome = str(ast.literal_eval(str(data["return_value"])))
                found.outcomes.setdefault(artist, Counter())[outcome] += 1
                # The line is written as the task returns, `runtime` seconds after it began.
                started = logged_at(record) - float(data.get("runtime") or 0.0)
                booked = float(args[3]) if len(args) > 3 else 0.0
                late = started - booked if booked else None
                found.runs.append(TaskRun(started, late, outcome))
            elif message.endswith(" received"):
                found.deliveries[artist] += 1
    return found


def queued_twice(found: TaskLog) -> int:
    """Artists delivered more often than once plus their refusals and retries (each of
    which rightly queues the artist again)."""
    from accounts.sumup.refresh import Outcome

    again = (Outcome.OVER_BUDGET.value, Outcome.RETRY.value)
    twice = 0
    for artist, delivered in found.deliveries.items():
        outcomes = found.outcomes.get(artist, Counter())
        twice += delivered > 1 + sum(outcomes[name] for name in again)
    return twice


def histogram(values: Iterable[int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(values).items())}


@dataclass
class SteadyResult:
    """The real system at work on one size: the Procfile's workers and beat, the fake
    SumUp, the default budget; the figures of its steady window, after the warm-up."""

    sweep_interval_seconds: int = STEADY_SWEEP_INTERVAL
    latency_ms: int = STEADY_LATENCY_MS
    workers: int = STEADY_WORKERS
    paced_per_second: float = 0.0
    artists_with_grants: int = 0
    due_per_second: float = 0.0
    setup_seconds: dict[str, float] = field(default_factory=dict)
    first_refresh_after: float = 0.0  # seconds from the processes' start
    window_seconds: float = 0.0
    refreshed_in_window: int = 0
    refreshes_per_second: float = 0.0
    token_calls_in_window: int = 0
    refreshed_in_phase: int = 0  # counted once the processes have stopped
    due_left_at_end: int = 0  # due and not yet refreshed as the window closed
    outcomes_in_window: dict[str, int] = field(default_factory=dict)
    outcomes_before_window: dict[str, int] = field(default_factory=dict)  # the warm-up's
    token_calls_per_artist: dict[str, int] = field(default_factory=dict)  # calls: artists
    deliveries_per_artist: dict[str, int] = field(default_factory=dict)  # deliveries: artists
    queued_twice: int = 0
    sweeps: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # logged until the window's end
    problems_at_shutdown: list[str] = field(default_factory=list)
    opened_at: float = 0.0  # Unix times of the window's start and end
    closed_at: float = 0.0
    # How long after its booked slot each refresh began, of those begun in the window:
    # p50, p99 and max in ms; how many began more than one paced interval late; and how
    # late each refused one began. The share spares one grant a window for lateness.
    late_ms: list[float] = field(default_factory=list)
    late_over_interval: int = 0
    refused_late_ms: list[float] = field(default_factory=list)
    samples: int = 0
    max_queue_length: int = 0  # LLEN celery
    max_held: int = 0  # LLEN celery + HLEN unacked, in one sample
    used_memory_before_mib: float = 0.0
    max_used_memory_mib: float = 0.0
    interval_work: int = 0  # one sweep interval at the paced share
    worker_peak_rss_mib: list[float] = field(default_factory=list)  # each with its pool
    beat_peak_rss_mib: float = 0.0
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # in the window
    machine_busy: float = 0.0  # of every CPU, in the window
    load_average: list[float] = field(default_factory=list)  # 1-minute, at open and close

    @property
    def refusals(self) -> int:
        from accounts.sumup.refresh import Outcome

        return self.outcomes_in_window.get(Outcome.OVER_BUDGET.value, 0)

    @property
    def most_calls_per_artist(self) -> int:
        return max((int(k) for k in self.token_calls_per_artist), default=0)


def measure_steady(conninfo: str, redis_url: str, size: int, seconds: float) -> SteadyResult:
    """Run the real system on the loaded table for a warm-up and `seconds` of steady state,
    with no trigger of ours: beat's sweeps and the dispatcher hand out the work."""
    from accounts.sumup import refresh

    result = SteadyResult(paced_per_second=1 / refresh.paced_interval())
    result.interval_work = int(STEADY_SWEEP_INTERVAL * result.paced_per_second)
    result.due_per_second = DUE_RATE_MARGIN * result.paced_per_second
    numbers = phase_numbers(size, math.ceil(result.due_per_second * (STEADY_WARMUP + seconds)))
    result.artists_with_grants = len(numbers)
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    clear_broker(client)
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-steady-")))
        fake = SteadyFake(logs)
        stack.callback(fake.stop)
        with timed(result.setup_seconds, "grants"):
            register_users(fake.url, numbers)
            grants = mint_grants(fake.url, numbers)
        with timed(result.setup_seconds, "schedule"):
            schedule_phase(conninfo, grants, 1 / result.due_per_second)
        broker, database = BrokerSamples(redis_url), DatabaseCpu()
        sampler = Sampler(broker, database)
        result.used_memory_before_mib = used_memory(client) / 2**20
        sampler.start()
        stack.callback(sampler.stop)
        processes = PhaseProcesses.start(steady_env(fake.url), logs, stack)
        try:
            run_phase(result, conninfo, client, fake, processes, database, numbers, seconds)
        except BenchError:
            log("process logs:\n" + processes.log_tails())
            raise
        sampler.stop()
        stop_all(processes.everyone)
        found = read_logs([process.log_path for process in processes.everyone], result.closed_at)
        calls = fake.stats()["token_calls_by_user"]
        result.refreshed_in_phase = refreshed_between(conninfo, numbers, 0.0, time.time())
    broker_figures(result, broker.samples)
    result.token_calls_per_artist = histogram(
        calls.get(email_of(n), {}).get("refresh_token", 0) for n in numbers
    )
    result.deliveries_per_artist = histogram(found.deliveries.values())
    result.queued_twice = queued_twice(found)
    result.sweeps = found.sweeps
    result.problems = found.problems[:PROBLEMS_KEPT]
    result.problems_at_shutdown = found.at_shutdown[:PROBLEMS_KEPT]
    lateness_figures(result, found.runs)
    return result


def lateness_figures(result: SteadyResult, runs: Sequence[TaskRun]) -> None:
    from accounts.sumup.refresh import Outcome

    in_window = [r for r in runs if result.opened_at <= r.started < result.closed_at]
    late = sorted(r.late * 1000 for r in in_window if r.late is not None)
    if late:
        result.late_ms = [late[len(late) // 2], late[len(late) * 99 // 100], late[-1]]
    interval_ms = 1000 / result.paced_per_second
    result.late_over_interval = sum(1 for ms in late if ms > interval_ms)
    result.refused_late_ms = sorted(
        r.late * 1000
        for r in in_window
        if r.outcome == Outcome.OVER_BUDGET.value and r.late is not None
    )


def run_phase(
    result: SteadyResult,
    conninfo: str,
    client: redis.Redis,
    fake: SteadyFake,
    processes: PhaseProcesses,
    database: DatabaseCpu,
    numbers: Sequence[int],
    seconds: float,
) -> None:
    """From the processes' start: the first refresh, the warm-up, then the window."""
    from django.utils import timezone

    from accounts.sumup import refresh

    started = time.time()
    processes.wait_ready()
    while (first := first_refresh(conninfo, numbers)) is None:
        check(
            time.time() - started < FIRST_REFRESH_WITHIN,
            f"no refresh within {FIRST_REFRESH_WITHIN:.0f} s of the processes' start",
        )
        processes.sleep_until(time.time() + POLL_S)
    result.first_refresh_after = first - started
    log(f"  first refresh {result.first_refresh_after:.1f} s after the start; warming up")
    processes.sleep_until(first + STEADY_WARMUP)
    pids = [process.pid for process in processes.everyone]
    cpu_before = cpu_sample(pids, fake.process.pid)
    database_mark = dict(database.seen)
    outcomes_before, calls_before = outcome_totals(client), fake.token_calls()
    opened = result.opened_at = time.time()
    result.load_average.append(os.getloadavg()[0])
    log(f"  steady state: {seconds:.0f} s")
    processes.sleep_until(opened + seconds)
    closed = time.time()
    outcomes_after, calls_after = outcome_totals(client), fake.token_calls()
    cpu = cpu_used(cpu_before, cpu_sample(pids, fake.process.pid))
    # The server's whole CPU, then the share of it that served this benchmark.
    cpu["postgres (all databases)"] = cpu.pop("postgres")
    cpu["redis (every redis-server)"] = cpu.pop("redis")
    cpu["postgres (the bench database)"] = database.used_since(database_mark)
    result.load_average.append(os.getloadavg()[0])
    result.worker_peak_rss_mib = [tree_peak_rss_mib(w.pid) for w in processes.workers]
    result.beat_peak_rss_mib = tree_peak_rss_mib(processes.beat.pid)
    result.due_left_at_end = refresh.due_profiles(timezone.now()).count()
    result.window_seconds = closed - opened
    result.refreshed_in_window = refreshed_between(conninfo, numbers, opened, closed)
    result.refreshes_per_second = result.refreshed_in_window / result.window_seconds
    result.closed_at = closed
    result.token_calls_in_window = calls_after - calls_before
    result.outcomes_before_window = difference(outcomes_before, Counter())
    result.outcomes_in_window = difference(outcomes_after, outcomes_before)
    cpu = {"workers and beat": cpu.pop("workers"), **cpu}
    result.cpu_seconds = cpu
    result.machine_busy = cpu["machine"] / ((os.cpu_count() or 1) * result.window_seconds)


def broker_figures(result: SteadyResult, samples: Sequence[tuple[float, int, int, int]]) -> None:
    result.samples = len(samples)
    result.max_queue_length = max((waiting for _, waiting, _, _ in samples), default=0)
    result.max_held = max((waiting + held for _, waiting, held, _ in samples), default=0)
    result.max_used_memory_mib = max((memory for *_, memory in samples), default=0) / 2**20


# --- per size ----------------------------------------------------------------------------------


@dataclass
class SizeResult:
    artists: int
    due_fraction: float
    measured_at: str
    load_seconds: dict[str, float] = field(default_factory=dict)
    table_bytes: dict[str, int] = field(default_factory=dict)
    due: StateResult = field(default_factory=StateResult)
    nothing_due: StateResult = field(default_factory=StateResult)
    steady: SteadyResult | None = None  # the real system at work (measure_steady)


def measure_size(conninfo: str, client: redis.Redis, size: int, fraction: float) -> SizeResult:
    from django.db import connections

    result = SizeResult(size, fraction, datetime.now(UTC).isoformat(timespec="seconds"))
    log(f"{size:,} artists: loading")
    connections.close_all()  # no session of ours holds the tables being emptied
    result.load_seconds = load_artists(conninfo, size, fraction)
    result.table_bytes = table_bytes(conninfo)
    expected = sum(expiry_offset(n, fraction)[0] for n in range(1, size + 1))
    log(f"{size:,} artists: measuring with {expected:,} due")
    result.due = measure_state(client)
    check(result.due.due_rows == expected, f"{result.due.due_rows} due, {expected} loaded due")
    log(f"{size:,} artists: measuring with nothing due")
    make_all_fresh(conninfo)
    result.nothing_due = measure_state(client)
    check(result.nothing_due.due_rows == 0, f"{result.nothing_due.due_rows} due, none expected")
    return result


# --- report ------------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def state_rows(state: StateResult) -> list[tuple[str, str]]:
    claim = state.claim
    assert claim is not None
    return [
        ("due rows (count())", f"{state.due_rows:,}"),
        ("count() time", f"{state.count_ms:,.1f} ms"),
        ("claim: plan", claim.path),
        ("claim: due condition in", claim.due_condition_in),
        ("claim: rows removed by filter", f"{claim.rows_removed_by_filter:,}"),
        ("claim: rows returned", f"{claim.rows_returned:,}"),
        ("claim: buffers hit / read", f"{claim.shared_hit:,} / {claim.shared_read:,}"),
        ("claim: execution time", f"{claim.execution_ms:,.1f} ms"),
        ("sweep run time", f"{state.sweep_seconds:,.3f} s"),
        ("sweep enqueued", f"{state.enqueued:,}" + (" (+ dispatcher)" if state.more_due else "")),
        (
            "peak RSS in sweep (before)",
            f"{state.peak_rss_mib:,.1f} MiB ({state.rss_before_mib:,.1f})"
            + ("" if state.peak_rss_reset else " *since start"),
        ),
        ("Redis LLEN celery", f"{state.queue_length:,}"),
        (
            "Redis used_memory (before)",
            f"{state.redis_used_after_mib:,.2f} MiB ({state.redis_used_before_mib:,.2f})",
        ),
        ("used_memory growth per task", f"{state.bytes_per_queued_task:,.0f} B"),
        ("MEMORY USAGE celery", f"{state.queue_bytes:,} B"),
    ]


def render_size(result: SizeResult) -> list[str]:
    load = result.load_seconds
    sizes = result.table_bytes
    lines = [
        f"N = {result.artists:,} connected artists, {result.due_fraction:.2%} due",
        f"  load: build rows (encrypt) {load['build_rows']:.1f} s, COPY {load['copy']:.1f} s,"
        f" VACUUM ANALYZE {load['vacuum_analyze']:.1f} s",
        f"  accounts_artistprofile: {mib(sizes['table'])} table + {mib(sizes['indexes'])}"
        f" indexes = {mib(sizes['total'])}",
        f"  {'':32}{'due share':>34}  {'nothing due':>34}",
    ]
    for (name, due), (_, fresh) in zip(
        state_rows(result.due), state_rows(result.nothing_due), strict=True
    ):
        lines.append(f"  {name:32}{due:>34}  {fresh:>34}")
    for label, state in (("due share", result.due), ("nothing due", result.nothing_due)):
        claim = state.claim
        assert claim is not None
        lines.append(f"  claim scan ({label}): {claim.scan}")
        lines.append(f"    Index Cond: {claim.index_cond or '-'}")
        lines.append(f"    Filter: {claim.filter or '-'}")
    if result.steady is not None:
        lines += render_steady(result.steady)
    return lines


def counts(by_name: dict[str, int]) -> str:
    return ", ".join(f"{name}={n:,}" for name, n in by_name.items()) or "none"


def render_steady(s: SteadyResult) -> list[str]:
    rss = " + ".join(f"{mib:.1f}" for mib in s.worker_peak_rss_mib)
    cpu = ", ".join(f"{k} {v:.1f} s" for k, v in s.cpu_seconds.items() if k != "machine")
    calls = ", ".join(f"{k} calls: {v:,}" for k, v in s.token_calls_per_artist.items())
    delivered = ", ".join(f"{k}x: {v:,}" for k, v in s.deliveries_per_artist.items())
    ran_out = "never ran out" if s.due_left_at_end else "RAN OUT: the window is not saturated"
    late = ", ".join(f"{ms:.0f}" for ms in s.late_ms) or "-"
    refused = ", ".join(f"{ms:.0f}" for ms in s.refused_late_ms) or "-"
    lines = [
        f"  steady state: {s.workers} x the Procfile's worker, its beat, fake SumUp at"
        f" {s.latency_ms} ms, default budget (paced share {s.paced_per_second:.1f}/s),"
        f" SUMUP_REFRESH_SWEEP_INTERVAL={s.sweep_interval_seconds}",
        f"    {s.artists_with_grants:,} artists with real grants fall due at"
        f" {s.due_per_second:.1f}/s (setup: grants {s.setup_seconds.get('grants', 0):.1f} s,"
        f" schedule {s.setup_seconds.get('schedule', 0):.1f} s); first refresh"
        f" {s.first_refresh_after:.1f} s after the start; window {s.window_seconds:.1f} s"
        f" after {STEADY_WARMUP:g} s of warm-up",
        f"    refreshes per second           {s.refreshes_per_second:.2f}"
        f" ({s.refreshes_per_second / s.paced_per_second:.1%} of the paced share;"
        f" {s.refreshed_in_window:,} refreshed, {s.token_calls_in_window:,} token calls at"
        " the fake)",
        f"    due, not refreshed, at the end {s.due_left_at_end:,} (due work {ran_out})",
        f"    outcomes in the window         {counts(s.outcomes_in_window)}",
        f"    outcomes in the warm-up        {counts(s.outcomes_before_window)}",
        f"    token calls per artist         {calls} ({s.refreshed_in_phase:,} refreshed in all)",
        f"    deliveries per artist          {delivered}; queued twice: {s.queued_twice}",
        f"    began after its booked slot    {late} ms (p50, p99, max);"
        f" {s.late_over_interval:,} more than one paced interval"
        f" ({1000 / s.paced_per_second:.0f} ms) late; the refused ones {refused} ms late",
        f"    broker, every {SAMPLE_EVERY:g} s ({s.samples} samples): LLEN celery max"
        f" {s.max_queue_length}, with unacked max {s.max_held} (one sweep interval of work:"
        f" {s.interval_work}); used_memory max {s.max_used_memory_mib:.2f} MiB"
        f" ({s.used_memory_before_mib:.2f} before)",
        f"    peak RSS (VmHWM) at the end    workers {rss} MiB (each with its pool),"
        f" beat {s.beat_peak_rss_mib:.1f} MiB",
        f"    machine in the window          busy {s.machine_busy:.0%} of {os.cpu_count()} CPUs"
        f" ({cpu}); load average {' -> '.join(f'{x:.2f}' for x in s.load_average)}",
        f"    sweeps in the workers' logs    {len(s.sweeps)}",
    ]
    lines += [f"      {line}" for line in s.sweeps]
    logged = (("until the window's end", s.problems), ("at shutdown", s.problems_at_shutdown))
    for when, problems in logged:
        if problems:
            lines.append(f"    warnings and errors logged {when} (first {len(problems)}):")
            lines += [f"      {line}" for line in problems]
    return lines


def summary_lines(results: Sequence[SizeResult], lookahead: float) -> list[str]:
    lines = [f"summary (the sweep's own run time against its LOOKAHEAD of {lookahead:g} s):"]
    for r in results:
        due, fresh = r.due, r.nothing_due
        assert due.claim is not None and fresh.claim is not None
        lines.append(
            f"  {r.artists:>9,}: sweep {due.sweep_seconds:.3f} s"
            f" ({due.enqueued} queued), nothing due {fresh.sweep_seconds:.3f} s;"
            f" claim {due.claim.due_condition_in}"
            f" ({due.claim.rows_removed_by_filter:,} / {fresh.claim.rows_removed_by_filter:,}"
            f" rows removed); count() {due.count_ms:.0f} ms;"
            f" peak RSS {due.peak_rss_mib:.0f} MiB; LLEN {due.queue_length},"
            f" Redis {due.redis_used_after_mib:.2f} MiB"
        )
    for r in results:
        if (s := r.steady) is not None:
            lines.append(
                f"  {r.artists:>9,}: steady {s.refreshes_per_second:.2f}/s of"
                f" {s.paced_per_second:.1f}/s, {s.refusals} refused, at most"
                f" {s.most_calls_per_artist} call per artist, {s.queued_twice} queued twice;"
                f" broker max {s.max_held} held (LLEN {s.max_queue_length}),"
                f" {s.max_used_memory_mib:.2f} MiB; peak RSS workers"
                f" {sum(s.worker_peak_rss_mib):.0f} MiB, beat {s.beat_peak_rss_mib:.0f} MiB;"
                f" machine busy {s.machine_busy:.0%}"
            )
    return lines


SWEEP_TARGET_S = 5.0  # the sweep's own run time, at every size
RSS_FLAT = 1.10  # peak RSS at the largest size against the smallest, at most
SWEEP_RSS_SLACK_MIB = 8.0  # what the sweep adds to its process, largest size over smallest


def verdicts(results: Sequence[SizeResult], context: dict[str, Any]) -> list[tuple[bool, str]]:
    """The issue's criteria that this benchmark measures, each PASS or FAIL with its figure."""
    interval_work = int(context["sweep_interval_seconds"] / context["paced_interval_seconds"])
    found: list[tuple[bool, str]] = []
    for r in results:
        for label, state in (("due share", r.due), ("nothing due", r.nothing_due)):
            claim = state.claim
            assert claim is not None
            found.append(
                (
                    claim.due_condition_in == "Index Cond",
                    f"{r.artists:,} {label}: due condition in {claim.due_condition_in}"
                    f" ({claim.scan}; {claim.rows_removed_by_filter:,} rows removed by filter)",
                )
            )
            found.append(
                (
                    state.sweep_seconds < SWEEP_TARGET_S,
                    f"{r.artists:,} {label}: sweep {state.sweep_seconds:.3f} s"
                    f" (target < {SWEEP_TARGET_S:g} s)",
                )
            )
            found.append(
                (
                    state.queue_length <= interval_work,
                    f"{r.artists:,} {label}: {state.queue_length:,} queued, at most one sweep"
                    f" interval of work ({interval_work:,})",
                )
            )
    if len(results) > 1:
        # This process holds the rows it loaded: what the sweep adds to it is the figure.
        small, large = (
            r.due.peak_rss_mib - r.due.rss_before_mib for r in (results[0], results[-1])
        )
        found.append(
            (
                large <= small + SWEEP_RSS_SLACK_MIB,
                f"memory the sweep adds in this process: {small:.1f} MiB at"
                f" {results[0].artists:,}, {large:.1f} MiB at {results[-1].artists:,}"
                f" (flat: at most {SWEEP_RSS_SLACK_MIB:g} MiB more)",
            )
        )
    return found + steady_verdicts(results)


def steady_verdicts(results: Sequence[SizeResult]) -> list[tuple[bool, str]]:
    """The issue's criteria for the real system at work, each PASS or FAIL with its figure."""
    found: list[tuple[bool, str]] = []
    measured = [(r.artists, r.steady) for r in results if r.steady is not None]
    for artists, s in measured:
        before = s.outcomes_before_window.get("over_budget", 0)
        found += [
            (
                s.refusals == 0,
                f"{artists:,} steady state: {s.refusals} refreshes refused by the budget in"
                f" {s.window_seconds:.0f} s ({before} in the warm-up)",
            ),
            (
                s.most_calls_per_artist <= 1 and s.queued_twice == 0,
                f"{artists:,} steady state: at most {s.most_calls_per_artist} token call per"
                f" artist ({s.refreshed_in_phase:,} refreshed), {s.queued_twice} artists"
                " queued twice",
            ),
            (
                s.max_held <= s.interval_work,
                f"{artists:,} steady state: at most {s.max_held} refreshes in the broker"
                f" (queued, LLEN max {s.max_queue_length}, or held by a worker), one sweep"
                f" interval of work {s.interval_work:,} ({s.sweep_interval_seconds} s at"
                f" {s.paced_per_second:.0f}/s)",
            ),
        ]
    if len(measured) > 1:
        (low_n, low), (high_n, high) = measured[0], measured[-1]
        for label, small, large in (
            ("workers", sum(low.worker_peak_rss_mib), sum(high.worker_peak_rss_mib)),
            ("beat", low.beat_peak_rss_mib, high.beat_peak_rss_mib),
        ):
            found.append(
                (
                    large <= small * RSS_FLAT,
                    f"steady state: peak RSS of the {label} {small:.0f} MiB at {low_n:,},"
                    f" {large:.0f} MiB at {high_n:,}: {large / small:.2f}x"
                    f" (flat: at most {RSS_FLAT:.2f}x)",
                )
            )
    return found


def save(results: Sequence[SizeResult], context: dict[str, Any]) -> None:
    """Merge into the results file by size: sizes measured by earlier runs stay."""
    previous: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        previous = json.loads(RESULTS_FILE.read_text())
    sizes = dict(previous.get("sizes", {}))
    sizes.update({str(r.artists): asdict(r) for r in results})
    ordered = dict(sorted(sizes.items(), key=lambda item: int(item[0])))
    write_json(RESULTS_FILE, {**context, "sizes": ordered})


# --- the whole benchmark ------------------------------------------------------------------------


def run_bench(args: argparse.Namespace, stack: contextlib.ExitStack) -> list[SizeResult]:
    """Measure each size in turn, saving after each, so a run cut short keeps its sizes."""
    private = stack.enter_context(PrivateRedis())
    configure_refresh_process(f"{args.server}/{DB_NAME}", private.url, CLIENT_ID)
    create_database(args.server, DB_NAME)
    stack.callback(drop_bench_database, args.server)
    migrate()
    client = private.client()
    conninfo = f"{args.server}/{DB_NAME}"
    context = context_figures(args.server)
    results: list[SizeResult] = []
    for size in args.sizes:
        result = measure_size(conninfo, client, size, args.due_fraction)
        if args.steady_seconds:
            log(f"{size:,} artists: the real system at work")
            result.steady = measure_steady(conninfo, private.url, size, args.steady_seconds)
        results.append(result)
        save(results, context)
        print("\n".join(render_size(results[-1])) + "\n", flush=True)
    print("\n".join(summary_lines(results, context["lookahead_seconds"])))
    failed = 0
    for passed, line in verdicts(results, context):
        print(f"{'PASS' if passed else 'FAIL'}  {line}")
        failed += not passed
    if failed:
        raise BenchError(f"{failed} criteria not met")
    return results


def drop_bench_database(server: str) -> None:
    from django.db import connections

    connections.close_all()
    drop_database(server, DB_NAME)


def context_figures(server: str) -> dict[str, Any]:
    from django.conf import settings

    from accounts.sumup import refresh, sweep

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {
        "postgres": row[0] if row else "",
        "cpus": os.cpu_count() or 1,
        "budget": settings.SUMUP_API_RATE_LIMIT,
        "lookahead_seconds": sweep.LOOKAHEAD,
        "claim_batch": sweep.ENQUEUE_BATCH,
        "refresh_window_seconds": settings.SUMUP_REFRESH_WINDOW,
        "sweep_interval_seconds": settings.SUMUP_REFRESH_SWEEP_INTERVAL,
        "paced_interval_seconds": refresh.paced_interval(),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in DEFAULT_SIZES),
        help="connected artists per measurement, comma-separated",
    )
    parser.add_argument("--due-fraction", type=float, default=DEFAULT_DUE_FRACTION)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--quick", action="store_true", help="10,000 artists only")
    parser.add_argument(
        "--steady-seconds",
        type=float,
        default=STEADY_SECONDS,
        help="seconds of steady state with the real workers and beat per size (0: none)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = "10000"
    try:
        args.sizes = [int(n.replace("_", "")) for n in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes takes whole numbers separated by commas")
    if min(args.sizes) < 1 or not 0 < args.due_fraction < 1:
        parser.error("sizes must be at least 1 and --due-fraction between 0 and 1")
    if args.steady_seconds < 0:
        parser.error("--steady-seconds must be 0 or more")
    args.server = args.server.rstrip("/")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_terminate)
    try:
        with contextlib.ExitStack() as stack:
            run_bench(args, stack)
    except (BenchError, psycopg.Error, redis.RedisError, requests.RequestException) as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    print(f"\nwritten: {RESULTS_FILE.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
