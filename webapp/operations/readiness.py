"""Readiness: can this deployment do its work right now?

Every check runs in a thread of a small shared pool and is waited for only until its
own deadline, so a dependency that hangs is reported as "timed out" while the answer
still comes within the probe's 2 s. Python cannot kill a thread; instead a check that
is still running is not started again for the same target (the next caller waits on
the same attempt), so a dependency that stays hung holds one thread, not one per probe.
"""

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from urllib.parse import urlsplit

import redis
from celery import Celery
from django.conf import settings
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor

from events.celery_app import app
from operations.heartbeat import HEARTBEAT_INTERVAL, read_heartbeat, read_started
from operations.schedule import schedule_problems

CHECK_TIMEOUT = 1.5  # seconds a caller waits for one check; all run at once, within 2 s
CLIENT_TIMEOUT = 1.0  # seconds for a client's connect and each reply, inside the deadline
WORKER_PING_TIMEOUT = 1.0  # seconds workers have to answer the broadcast ping
BEAT_MAX_AGE = 4 * HEARTBEAT_INTERVAL  # seconds (2 min): four missed writes in a row
POOL_SIZE = 8  # threads; at most one per (check, target) is ever busy


class CheckFailed(Exception):
    """A check ran and found its dependency unhealthy; the message is the detail."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], str]  # returns the detail on success, raises on failure
    target: str = ""  # what it probes: a hung attempt is shared only for the same target
    timeout: float = CHECK_TIMEOUT


@dataclass(frozen=True)
class Result:
    ok: bool
    detail: str
    ms: float


def _redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=CLIENT_TIMEOUT, socket_connect_timeout=CLIENT_TIMEOUT
    )


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "SELECT 1 answered"


def check_redis() -> str:
    client = _redis()
    try:
        client.ping()
    finally:
        client.close()
    return "PING answered"


def check_migrations() -> str:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CheckFailed(f"{len(names)} unapplied: {shown}")
    return "all applied"


def _read_from_redis(read: Callable[[redis.Redis], float | None]) -> float | None:
    client = _redis()
    try:
        return read(client)
    finally:
        client.close()


def check_beat() -> str:
    last = _read_from_redis(read_heartbeat)
    if last is None:
        raise CheckFailed(
            "no heartbeat recorded: is beat running with "
            "--scheduler jobs.heartbeat:HeartbeatScheduler?"
        )
    age = time.time() - last
    if age > BEAT_MAX_AGE:
        raise CheckFailed(f"last heartbeat {age:.0f} s ago (limit {BEAT_MAX_AGE:.0f} s)")
    return f"last heartbeat {max(age, 0.0):.1f} s ago"


def check_schedule() -> str:
    """Every entry beat must run is scheduled, enabled and on time (operations.schedule)."""
    started = _read_from_redis(read_started)
    problems = schedule_problems(
        datetime.now(UTC), None if started is None else datetime.fromtimestamp(started, UTC)
    )
    if problems:
        raise CheckFailed("; ".join(problems))
    return "every entry scheduled and on time"


def _probe_app() -> Celery:
    """A throwaway Celery app on the project's broker with short timeouts: the shared
    app's pooled connections retry a lost broker for minutes, and a probe must neither
    wait on them nor leave connections behind."""
    probe = Celery("jobs-probe", set_as_current=False, fixups=[])
    probe.conf.update(
        broker_url=app.conf.broker_url,
        broker_transport_options={
            **app.conf.broker_transport_options,
            "socket_timeout": CLIENT_TIMEOUT,
            "socket_connect_timeout": CLIENT_TIMEOUT,
        },
        broker_connection_timeout=CLIENT_TIMEOUT,
        control_exchange=app.conf.control_exchange,
        accept_content=app.conf.accept_content,
        task_serializer=app.conf.task_serializer,
    )
    return probe


def check_worker(destination: str | None = None) -> str:
    """A worker (or the named one) answers a broadcast ping on the broker."""
    probe = _probe_app()
    try:
        with probe.connection_for_write() as broker:
            broker.ensure_connection(max_retries=0)  # a broker that is down fails at once
            replies = probe.control.ping(
                destination=[destination] if destination else None,
                timeout=WORKER_PING_TIMEOUT,
                limit=1,
                connection=broker,
            )
    finally:
        probe.close()
    names = [name for reply in replies or [] for name in reply]
    if not names:
        within = f"a ping within {WORKER_PING_TIMEOUT:.0f} s"
        raise CheckFailed(
            f"{destination} did not answer {within}"
            if destination
            else f"no worker answered {within}"
        )
    return f"{names[0]} answered a ping"


def this_host_worker() -> str:
    """The default node name of a worker started on this host (`celery@<hostname>`)."""
    return f"celery@{socket.gethostname()}"


def database_check() -> Check:
    return Check("database", check_database, target=str(settings.DATABASES["default"]["NAME"]))


def redis_check() -> Check:
    return Check("redis", check_redis, target=settings.REDIS_URL)


def migrations_check() -> Check:
    return Check("migrations", check_migrations, target=str(settings.DATABASES["default"]["NAME"]))


def beat_check() -> Check:
    return Check("beat", check_beat, target=settings.REDIS_URL)


def schedule_check() -> Check:
    return Check("schedule", check_schedule, target=str(settings.DATABASES["default"]["NAME"]))


def beat_checks() -> list[Check]:
    """Beat's loop is alive, and the schedule it runs is whole and on time."""
    return [beat_check(), schedule_check()]


def worker_check(destination: str | None = None) -> Check:
    target = f"{app.conf.broker_url} {destination or '*'}"
    return Check("worker", partial(check_worker, destination), target=target)


def web_checks() -> list[Check]:
    """What the web process itself needs."""
    return [database_check(), redis_check(), migrations_check()]


def readyz_checks() -> list[Check]:
    """The whole deployment: the web's needs, plus a worker to run jobs and beat to plan them."""
    return [*web_checks(), worker_check(), *beat_checks()]


_pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="readiness")
_in_flight: dict[tuple[str, str], Future[Result]] = {}
_lock = threading.Lock()


def _secrets() -> list[str]:
    found = [str(settings.DATABASES["default"].get("PASSWORD") or "")]
    for url in (settings.REDIS_URL, app.conf.broker_url):
        found.append(urlsplit(str(url)).password or "")
    return [secret for secret in found if secret]


def _describe(exc: Exception) -> str:
    text = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


def _execute(check: Check) -> Result:
    started = time.perf_counter()
    try:
        ok, detail = True, check.run()
    except Exception as exc:  # any failure of a dependency is the answer, not a crash
        ok, detail = False, _describe(exc)
    finally:
        # Pool threads live on; a connection left open here would never be reused safely.
        connections.close_all()
    return Result(ok, detail, round((time.perf_counter() - started) * 1000, 1))


def _submit(check: Check) -> Future[Result]:
    key = (check.name, check.target)
    with _lock:
        future = _in_flight.get(key)
        if future is None or future.done():
            future = _pool.submit(_execute, check)
            _in_flight[key] = future
    return future


def run_checks(checks: list[Check]) -> dict[str, Result]:
    """Run the checks at once; each answers by its own deadline, a late one as "timed out"."""
    started = time.monotonic()
    submitted = [(check, _submit(check)) for check in checks]
    results: dict[str, Result] = {}
    for check, future in submitted:
        remaining = check.timeout - (time.monotonic() - started)
        try:
            results[check.name] = future.result(timeout=max(remaining, 0.0))
        except FutureTimeout:
            waited = round((time.monotonic() - started) * 1000, 1)
            results[check.name] = Result(False, "timed out", waited)
    return results
