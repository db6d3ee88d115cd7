"""Measure the SumUp token-refresh sweep as the number of connected artists grows.

Run:  .venv/bin/python bench/refresh_scale_bench.py [--sizes 10000,100000,1000000]
      [--due-fraction 0.0833] [--quick]
(--quick: 10,000 artists only, a smoke run.)

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

Nothing here calls SumUp. The figures go to bench/results/refresh_scale.json, merged by
size, so sizes measured by separate runs sit side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import django
import psycopg
import redis

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
# Run as a script, only bench/ is on sys.path; the shared helpers live in bench.common.
sys.path.insert(0, str(PROJECT_DIR))

from bench.common import (  # noqa: E402
    DEFAULT_SERVER,
    WEBAPP_DIR,
    BenchError,
    PrivateRedis,
    check,
    create_database,
    drop_database,
    log,
    on_terminate,
    production_stand_ins,
    timed,
    write_json,
)
from bench.token_refresh_bench import copy_rows, migrate, profile_row, user_row  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "refresh_scale.json"
DB_NAME = "bench_refresh_scale"
CLIENT_ID = "jersey-events-local"
# Nothing calls SumUp here; should anything try, it meets a closed loopback port.
UNREACHABLE_SUMUP = "http://127.0.0.1:9"
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


def configure_environment(server: str, redis_url: str) -> None:
    """Settings for this process, from the environment: the private Redis is cache,
    broker and budget store; the SumUp budget is the settings' default."""
    os.environ.update(production_stand_ins(CLIENT_ID))  # DEBUG off: no query log
    os.environ.pop("SUMUP_API_RATE_LIMIT", None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="events.settings",
        DATABASE_URL=f"{server}/{DB_NAME}",
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        CELERY_RESULT_BACKEND=redis_url,
        SUMUP_BASE_URL=UNREACHABLE_SUMUP,
        SUMUP_API_URL=f"{UNREACHABLE_SUMUP}/v0.1",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(WEBAPP_DIR))
    django.setup()


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


def status_kib(name: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: now; VmHWM: the high-water mark)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise BenchError(f"no {name} in /proc/self/status")


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
    return lines


SWEEP_TARGET_S = 5.0  # the sweep's own run time, at every size
RSS_FLAT = 1.10  # peak RSS at the largest size against the smallest, at most


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
        low, high = results[0].due.peak_rss_mib, results[-1].due.peak_rss_mib
        found.append(
            (
                high <= low * RSS_FLAT,
                f"peak RSS in the sweep {low:.0f} MiB at {results[0].artists:,},"
                f" {high:.0f} MiB at {results[-1].artists:,}: {high / low:.2f}x"
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
    configure_environment(args.server, private.url)
    create_database(args.server, DB_NAME)
    stack.callback(drop_bench_database, args.server)
    migrate()
    client = private.client()
    conninfo = f"{args.server}/{DB_NAME}"
    context = context_figures(args.server)
    results: list[SizeResult] = []
    for size in args.sizes:
        results.append(measure_size(conninfo, client, size, args.due_fraction))
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
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = "10000"
    try:
        args.sizes = [int(n.replace("_", "")) for n in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes takes whole numbers separated by commas")
    if min(args.sizes) < 1 or not 0 < args.due_fraction < 1:
        parser.error("sizes must be at least 1 and --due-fraction between 0 and 1")
    args.server = args.server.rstrip("/")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_terminate)
    try:
        with contextlib.ExitStack() as stack:
            run_bench(args, stack)
    except (BenchError, psycopg.Error, redis.RedisError) as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    print(f"\nwritten: {RESULTS_FILE.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
