"""What the benchmarks share: failing a step, logging progress, throwaway databases, a
private Redis, stopping process groups, timing, per-second rate figures, the results
file, the stand-in secrets production settings require, and the settings of a process
that drives the token refresh itself.

The scripts run as `python bench/<name>.py`, with only bench/ on sys.path: each puts
the project directory there first and imports this module as `bench.common`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql

# One redis-server helper for the tests and the benchmarks.
from tests.support.rehearsal import PrivateRedis, free_port

__all__ = ["PrivateRedis", "free_port"]

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
WEBAPP_DIR = PROJECT_DIR / "webapp"
VENV_BIN = Path(sys.executable).parent

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
STOP_TIMEOUT_S = 30.0  # a process group's warm shutdown, after TERM, before KILL
# A Fernet key published here on purpose: benchmark databases hold no real token.
PUBLIC_TOKEN_KEY = "aBRe9bTSlE-pZ5N5tH1XWwFJ2UvQ5o5mQjv2Bq8Q6Ac="  # noqa: S105


class BenchError(RuntimeError):
    """A step failed or a check did not hold."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


def production_stand_ins(client_id: str) -> dict[str, str]:
    """The variables production settings refuse to start without (DEBUG off: no query log,
    as in production), with throwaway values; nothing measured depends on them."""
    return {
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-not-a-secret",
        "SUMUP_CLIENT_ID": client_id,
        "SUMUP_CLIENT_SECRET": "bench-only-not-a-secret",
        "SUMUP_TOKEN_KEYS": PUBLIC_TOKEN_KEY,
        "METRICS_TOKEN": "bench-only-metrics-token",
    }


# Nothing a refresh benchmark runs in its own process calls SumUp; should anything try, it
# meets a closed loopback port.
UNREACHABLE_SUMUP = "http://127.0.0.1:9"
# The refresh settings a benchmark measures at their defaults, whatever the shell holds.
REFRESH_SETTINGS_AT_DEFAULT = (
    "SUMUP_API_RATE_LIMIT",
    "SUMUP_REFRESH_WINDOW",
    "SUMUP_REFRESH_TOKEN_RENEW_AFTER",
    "SUMUP_TOKEN_ACTIVE_FOR",
    "SUMUP_REFRESH_SWEEP_INTERVAL",
)


def configure_refresh_process(database_url: str, redis_url: str, client_id: str) -> None:
    """Django in this process, for a benchmark that drives the token refresh itself:
    production settings (DEBUG off: no query log), the private Redis as cache, broker and
    budget store, the refresh settings at their defaults, SumUp unreachable."""
    os.environ.update(production_stand_ins(client_id))
    for name in REFRESH_SETTINGS_AT_DEFAULT:
        os.environ.pop(name, None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="events.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        CELERY_RESULT_BACKEND=redis_url,
        SUMUP_BASE_URL=UNREACHABLE_SUMUP,
        SUMUP_API_URL=f"{UNREACHABLE_SUMUP}/v0.1",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(WEBAPP_DIR))
    import django

    django.setup()


# --- throwaway databases ------------------------------------------------------------------


def admin_execute(server: str, query: sql.SQL | sql.Composed) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(query)


def create_database(server: str, name: str, template: str | None = None) -> None:
    """`name`, empty (or a file copy of `template`); dropped first if a run left it."""
    check(name.startswith("bench_"), f"refusing to create {name}: not a bench_ database")
    admin_execute(server, sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        query = sql.SQL("{} TEMPLATE {} STRATEGY FILE_COPY").format(query, sql.Identifier(template))
    admin_execute(server, query)


def drop_database(server: str, name: str) -> None:
    check(name.startswith("bench_"), f"refusing to drop {name}: not a bench_ database")
    query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    admin_execute(server, query)


# --- processes ------------------------------------------------------------------------------


def stop_process_groups(
    processes: Sequence[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_S
) -> None:
    """TERM each process group (each was started in its own session), then KILL those
    still there after `timeout` seconds."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"process {process.pid} ignored TERM for {timeout:.0f} s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def on_terminate(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler: unwinds through the caller's cleanup, as Ctrl-C does."""
    raise KeyboardInterrupt


# --- timing and rates -----------------------------------------------------------------------


@contextlib.contextmanager
def timed(into: dict[str, float], name: str, places: int | None = None) -> Iterator[None]:
    """Store the block's wall time in seconds at `into[name]` (rounded to `places`)."""
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    into[name] = elapsed if places is None else round(elapsed, places)


def busiest_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any `window`-second interval [t, t + window) starting at one."""
    ordered = sorted(times)
    best, end = 0, 0
    for start, t in enumerate(ordered):
        while end < len(ordered) and ordered[end] < t + window:
            end += 1
        best = max(best, end - start)
    return best


def full_seconds_rate(times: Sequence[float]) -> tuple[int, float]:
    """(full seconds, events per second in them) of a sorted series: the seconds after the
    first event, the last, partial second left out; NaN when there is no full second."""
    first = times[0]
    full_seconds = int(times[-1] - first)
    in_full = sum(1 for t in times if t - first < full_seconds)
    return full_seconds, in_full / full_seconds if full_seconds else float("nan")


def lateness_ms(grants: Sequence[float], times: Sequence[float]) -> tuple[float, float, float]:
    """p50, p99 and max of (n-th time - n-th grant), in ms (NaN when there are none):
    events paced ~20 ms apart keep their order between the two, so matching by rank
    pairs each with its own grant."""
    late = sorted((t - g) * 1000 for g, t in zip(grants, times, strict=False))
    if not late:
        return float("nan"), float("nan"), float("nan")
    return late[len(late) // 2], late[min(len(late) - 1, len(late) * 99 // 100)], late[-1]


# --- results --------------------------------------------------------------------------------


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
