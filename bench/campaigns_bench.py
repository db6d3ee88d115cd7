"""Benchmark the email campaign sender, and django-post_office beside it.

Run:  .venv/bin/python bench/campaigns_bench.py [--recipients N] [--rate 100/s]
      [--fast-rate 1000/s] [--limit-recipients N] [--limit-rate 50/s] [--quick]
(default 10,000 recipients at 100/s, again at 1,000/s, and 2,000 more at 50/s; --quick:
1,000 at 50/s and at 500/s, and 300 more, a smoke run for CI).

Both systems run in one run on this machine, against the same things:
- a fresh PostgreSQL database `bench_campaigns` (created, and dropped at the end) holding
  N approved artists who must connect SumUp;
- a Redis of its own (`redis-server` on a free loopback port, stopped at the end) for the
  broker, results and the rate limiter, so no test or other benchmark shares its queue
  or its limiter's windows;
- the fake Brevo API (fakes.brevo) in its own process on 127.0.0.1, reached
  through anymail's real Brevo backend, at a raised priority where allowed (it stands
  for a provider on machines of its own, whose clock the workers' load does not delay);
- 2 worker processes: for campaigns two `celery -A jobs worker` as the Procfile runs
  them (prefork, WORKER_CONCURRENCY processes each, 3 by default; --pool, --concurrency;
  `--pool threads` adds `DATABASE_POOL=1`); for post_office
  `send_queued_mail_until_done(processes=2)` (its default 5 threads per process,
  BATCH_SIZE 100 unless --post-office-batch).

Phases (the provider counts messages: a batch request's arrival counts each message
it carries, and the limiter takes a slot for each):
(a) a campaign at --rate, then (a_fast) the same audience again (a `--resend` campaign)
    at --fast-rate. Judged where the provider counts, on the arrival of every message
    at the fake: the achieved rate, (messages - 1) / (last - first), within 5% of the
    limit (sends are scheduled at 96.6% of a per-second rate, leaving 30 ms for
    lateness: campaigns.rate), and no 1 s window [t, t + 1 s), anchored at every
    arrival, above the limit. The same from the limiter's own log of grants (kept in
    Redis, polled) and from the workers' slot log (each slot is stamped between two
    logged instants; only slots certainly inside a window are counted). Shown beside:
    how late each message arrived after its grant, the longest gaps between requests,
    and the send tasks run per message (a task over the rate re-queues itself).
(b) the same audience again with no rate limit: messages per second end to end, from
    `start` until the provider accepted the last one; judged at least 1.5x (c)'s.
(c) django-post_office sends the same N messages (rendered by the same code): queued
    with send_many, then sent; messages per second for the send alone and end to end.
(d) at the limit: --limit-recipients more artists (2,000 keep 50/s busy for 40 s) get a
    campaign at --limit-rate, run by the same workers right after (b), whose unlimited
    rate shows the machine's ceiling beside it; judged as (a), but on the messages in
    the full seconds after the first, per second, at least 90% of the limit.
Each phase shows the CPU milliseconds per message of every process: the workers (their
pool processes included), this process (which starts the campaign and polls; for (c),
django-post_office's own sending processes), the fake provider and the private Redis,
read from /proc; `ours_ms` is the workers' and this process's together.
Every phase: every artist's message accepted by the provider exactly once.
Results are printed and written to bench/results/campaigns.json (campaigns-quick.json
for --quick); exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import psycopg
import redis

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
# Run as a script, only bench/ is on sys.path; the shared helpers live in bench.common.
sys.path.insert(0, str(PROJECT_DIR))

from bench.common import (  # noqa: E402
    DEFAULT_SERVER,
    VENV_BIN,
    BenchError,
    PrivateRedis,
    busiest_window,
    full_seconds_rate,
    lateness_ms,
    log,
    production_stand_ins,
    write_json,
)

RESULTS_FILE = BENCH_DIR / "results" / "campaigns.json"
LOG_DIR = PROJECT_DIR / "var" / "bench-campaigns"

SERVER = DEFAULT_SERVER
DB_NAME = "bench_campaigns"
FAKE_PORT = 8791
FAKE_NICENESS = -5  # the fake provider's priority, where the bench may raise it
WORKERS = 2
# The workers run as the Procfile configures them: the default (prefork) pool with
# WORKER_CONCURRENCY processes each. Other pools and sizes: --pool, --concurrency.
POOL, CONCURRENCY = "prefork", int(os.environ.get("WORKER_CONCURRENCY") or 3)
CELERY = VENV_BIN / "celery"
DEFAULT_RECIPIENTS, QUICK_RECIPIENTS = 10_000, 1_000
DEFAULT_RATE, QUICK_RATE = "100/s", "50/s"
DEFAULT_FAST_RATE, QUICK_FAST_RATE = "1000/s", "500/s"
TARGET_RATIO = 1.5  # phase (b) end to end against django-post_office's (c)
# Phase (d): enough recipients to keep the limit busy for 40 s (6 s for --quick).
DEFAULT_LIMIT_RECIPIENTS, QUICK_LIMIT_RECIPIENTS = 2_000, 300
LIMIT_RATE = "50/s"
RATE_TOLERANCE = 0.05  # phase (a): the achieved rate must be within this share of the limit
LIMIT_TARGET = 0.90  # phase (d): the least share of the limit it must achieve
# The limiter's log keeps its newest grants (the rate's amount, a window's worth: over a
# second): polled this often, none leaves it unseen.
GRANT_POLL_S = 0.05
PHASE_TIMEOUT_S = 1800.0
POLL_S = 0.2
SLOT = re.compile(r"email slots \((\d+)\) at .* granted between ([0-9.]+) and ([0-9.]+)")
SEND_RECEIVED = re.compile(r"Task jobs\.campaigns\.send\[[^\]]+\] received")


def environment(fake_url: str, redis_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"{SERVER}/{DB_NAME}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        **production_stand_ins("bench-campaigns"),  # nothing here calls SumUp
        "EMAIL_BACKEND": "anymail.backends.brevo.EmailBackend",
        "ANYMAIL_BREVO_API_KEY": "fake-brevo-api-key",
        "ANYMAIL_BREVO_API_URL": fake_url,
        "LOG_LEVEL": "WARNING",
    }


def setup_django(env: dict[str, str], post_office_batch: int) -> None:
    """This process: the project's settings plus post_office (the workers run plain)."""
    os.environ.update(env)
    import django
    from django.conf import settings

    import events.settings as base

    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    values["INSTALLED_APPS"] = [*base.INSTALLED_APPS, "post_office"]
    values["POST_OFFICE"] = {
        "BACKENDS": {"default": env["EMAIL_BACKEND"]},
        "BATCH_SIZE": post_office_batch,
        "LOCK_FILE_NAME": "bench_campaigns_post_office",
    }
    settings.configure(**values)
    django.setup()


def recreate_database(drop_only: bool = False) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {DB_NAME}")


def seed(count: int, first: int = 0) -> None:
    """`count` approved artists who must connect SumUp, numbered from `first`."""
    from django.contrib.auth.hashers import make_password

    from accounts.models import ArtistProfile, User

    numbers = range(first, first + count)
    users = [
        User(
            username=f"bench{n}",
            email=f"bench{n}@example.com",
            password=make_password(None),  # unusable
            user_type=User.UserType.ARTIST,
        )
        for n in numbers
    ]
    User.objects.bulk_create(users, batch_size=2000)
    profiles = [
        ArtistProfile(user=user, display_name=f"Bench Artist {n}", is_approved=True)
        for n, user in zip(numbers, User.objects.order_by("pk")[first:], strict=True)
    ]
    ArtistProfile.objects.bulk_create(profiles, batch_size=2000)


def fetch(url: str, data: bytes | None = None) -> Any:
    method = "POST" if data is not None else "GET"
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())


def process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system, with reaped children's) of a process and every
    process below it, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        # After the name: state, ppid, ... utime (14th field), stime, cutime, cstime.
        parents[int(entry.name)] = int(fields[1])
        spent[int(entry.name)] = sum(int(value) for value in fields[11:15]) / ticks
    total, tree = 0.0, {root}
    for pid in sorted(spent):
        ancestor, chain = pid, []
        while ancestor not in tree and ancestor in parents and ancestor > 1:
            chain.append(ancestor)
            ancestor = parents[ancestor]
        if ancestor in tree:
            tree.update(chain)
    for pid in tree:
        total += spent.get(pid, 0.0)
    return total


class CpuMeter:
    """CPU seconds spent during a phase by the workers, this process (which starts the
    campaign and polls), the fake provider and the private Redis, and per message."""

    def __init__(self, workers: Workers | None, fake: Fake, redis_pid: int | None) -> None:
        self.workers, self.fake, self.redis_pid = workers, fake, redis_pid
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        own = os.times()
        return {
            "workers": self.workers.cpu_seconds() if self.workers else 0.0,
            "bench": own.user + own.system + own.children_user + own.children_system,
            "fake_provider": process_tree_cpu(self.fake.process.pid),
            "redis": process_tree_cpu(self.redis_pid) if self.redis_pid else 0.0,
        }

    def per_message(self, count: int) -> dict[str, float]:
        """ms of CPU per message; `ours` is the workers' and this process's together."""
        end = self._now()
        spent = {name: end[name] - self.start[name] for name in end}
        figures = {f"{name}_ms": round(1000 * value / count, 3) for name, value in spent.items()}
        figures["ours_ms"] = round(1000 * (spent["workers"] + spent["bench"]) / count, 3)
        return figures


def _raise_priority() -> None:
    """In the fake's process before it starts: a higher priority where allowed (root),
    so that it stamps arrivals as a provider on its own machines would, not when the
    workers' load lets it run; `Fake.niceness` says what it got."""
    with contextlib.suppress(OSError):  # not allowed: the default priority
        os.nice(FAKE_NICENESS)


class Fake:
    """The fake Brevo in its own process."""

    def __init__(self) -> None:
        self.base = f"http://127.0.0.1:{FAKE_PORT}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fakes.brevo", "--port", str(FAKE_PORT)],
            cwd=PROJECT_DIR,
            stdout=subprocess.DEVNULL,
            preexec_fn=_raise_priority,
        )
        self.niceness = os.getpriority(os.PRIO_PROCESS, self.process.pid)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.arrivals()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise BenchError("the fake Brevo did not start") from None
                time.sleep(0.1)

    @property
    def api_url(self) -> str:
        return f"{self.base}/v3/"

    def reset(self) -> None:
        fetch(f"{self.base}/_fake/reset", b"{}")

    def arrivals(self) -> list[tuple[float, str, int]]:
        """(time, address, HTTP status) of every send request."""
        return [(float(at), str(to), int(status)) for at, to, status in self._get("arrivals")]

    def accepted(self) -> list[tuple[float, str, str]]:
        """(time, address, message id) of every message accepted."""
        return [(float(at), str(to), str(mid)) for at, to, mid in self._get("accepted")]

    def _get(self, what: str) -> list[list[Any]]:
        rows: list[list[Any]] = fetch(f"{self.base}/_fake/{what}")
        return rows

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Workers:
    """Two `celery -A jobs worker` processes on the bench database."""

    def __init__(self, env: dict[str, str], pool: str, concurrency: int) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        worker_env = {**os.environ, **env, "DJANGO_SETTINGS_MODULE": "events.settings"}
        if pool == "threads":  # one connection pool per process, which its threads share
            worker_env["DATABASE_POOL"] = "1"
            worker_env["DATABASE_POOL_MAX_SIZE"] = str(concurrency + 2)
        worker_env["LOG_LEVEL"] = "INFO"  # the slot log (campaigns.rate) is INFO
        self.names = [f"bench-campaigns-{i}@{os.uname().nodename}" for i in range(WORKERS)]
        self.logs = [LOG_DIR / f"worker-{i}.log" for i in range(WORKERS)]
        self.processes = []
        for name, path in zip(self.names, self.logs, strict=True):
            with path.open("wb") as output:
                command = [str(CELERY), "-A", "jobs", "worker", "-n", name, "--pool", pool]
                command += ["--concurrency", str(concurrency), "--loglevel", "INFO"]
                command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
                self.processes.append(
                    subprocess.Popen(
                        command, cwd=PROJECT_DIR, env=worker_env, stdout=output, stderr=output
                    )
                )
        from jobs import app

        deadline = time.monotonic() + 60
        while True:
            replies = app.control.ping(destination=self.names, timeout=1.0) or []
            if set(self.names) <= {name for reply in replies for name in reply}:
                return
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise BenchError(f"workers did not start; see {LOG_DIR}")

    def slots(self, sizes: Sequence[int] | None = None) -> list[tuple[float, float]]:
        """Each slot granted (one a message; a request's together) since the logs had
        these sizes, as the (before, after) instants logged around its stamp."""
        found = []
        for i, path in enumerate(self.logs):
            with path.open("rb") as log_file:
                log_file.seek(sizes[i] if sizes else 0)
                text = log_file.read().decode(errors="replace")
            found += [(float(b), float(a)) for n, b, a in SLOT.findall(text) for _ in range(int(n))]
        return found

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the worker processes and their pool processes."""
        return sum(process_tree_cpu(process.pid) for process in self.processes)

    def log_sizes(self) -> list[int]:
        return [path.stat().st_size for path in self.logs]

    def send_tasks_since(self, sizes: Sequence[int]) -> int:
        """Send tasks the workers received since their logs had these sizes."""
        received = 0
        for path, size in zip(self.logs, sizes, strict=True):
            with path.open("rb") as log_file:
                log_file.seek(size)
                received += len(SEND_RECEIVED.findall(log_file.read().decode(errors="replace")))
        return received

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def most_slots_in_one_second(slots: Sequence[tuple[float, float]]) -> int:
    """The most slots certainly stamped inside one window [b, b + 1 s), over every
    slot's `b` (a slot is stamped between its logged `before` and `after`)."""
    ordered = sorted(slots)
    befores = [before for before, _ in ordered]
    most = 0
    for i, (start, _) in enumerate(ordered):
        end = bisect.bisect_left(befores, start + 1.0)
        most = max(most, sum(1 for _, after in ordered[i:end] if after < start + 1.0))
    return most


def rate_figures(times: Sequence[float], limit: float) -> dict[str, Any]:
    """Sends against a per-second limit, from one sorted series of their times, as the
    token refresh benchmark counts its calls: the achieved rate is the sends in the full
    seconds after the first, per second (the last, partial second left out), and the
    busiest window the most sends in any [t, t + 1 s) starting at a send."""
    if len(times) < 2:
        return {"sends": len(times)}
    first = times[0]
    full_seconds, achieved = full_seconds_rate(times)
    return {
        "sends": len(times),
        "full_seconds": full_seconds,
        "achieved_per_s": round(achieved, 2),
        "of_limit": round(achieved / limit, 4),
        "first_to_last_per_s": round((len(times) - 1) / (times[-1] - first), 2),
        "busiest_1s": busiest_window(times),
        # Where a schedule loses time: the longest pauses between one request and the next.
        "longest_gaps_ms": sorted(
            (round((b - a) * 1000, 1) for a, b in pairwise(times)),
            reverse=True,
        )[:5],
    }


def lateness_summary(grants: Sequence[float], arrivals: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of (n-th arrival - n-th grant) in ms: sends ~20 ms apart keep
    their order between the two, so matching by rank pairs each request with its grant."""
    if not grants or not arrivals:
        return {}
    p50, p99, worst = lateness_ms(grants, arrivals)
    return {"p50": round(p50, 1), "p99": round(p99, 1), "max": round(worst, 1)}


class GrantLog(threading.Thread):
    """Copies the limiter's own log of grants for one rate of the `email` rule (a list in
    Redis: one stamp per grant, µs on Redis's clock) while a phase runs."""

    def __init__(self, redis_url: str, rate: str) -> None:
        super().__init__(name="grant-log", daemon=True)
        from campaigns.rate import RULE
        from events.rate_limits import grant_log_key, parse_rate

        self.key = grant_log_key(RULE, parse_rate(rate))
        self.client = redis.Redis.from_url(redis_url)
        # Each poll sees most grants again: a stamp counts as often as one poll saw it
        # at most (a request's slots share one stamp; two requests in one µs would
        # count once).
        self.grants: Counter[bytes] = Counter()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            seen = Counter(cast(list[bytes], self.client.lrange(self.key, 0, -1)))
            for stamp, n in seen.items():
                self.grants[stamp] = max(self.grants[stamp], n)
            self.halt.wait(GRANT_POLL_S)

    def __enter__(self) -> GrantLog:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.halt.set()
        self.join()
        self.client.close()

    def times(self) -> list[float]:
        return sorted(int(stamp) / 1_000_000 for stamp, n in self.grants.items() for _ in range(n))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


def exactly_once(accepted: Sequence[tuple[float, str, str]], count: int) -> dict[str, int]:
    per_address = Counter(to for _, to, _ in accepted)
    duplicates = sum(n - 1 for n in per_address.values() if n > 1)
    return {"accepted": len(accepted), "addresses": len(per_address), "duplicates": duplicates}


def run_campaign(
    fake: Fake, meter: Callable[[], CpuMeter], *, rate: str, resend: bool, count: int
) -> dict[str, Any]:
    from campaigns import services
    from campaigns.models import Campaign

    fake.reset()
    cpu = meter()
    draft = Campaign(name=f"bench {rate or 'unlimited'}", rate_limit=rate, include_notified=resend)
    campaign = services.create(draft, actor="bench")
    started = time.time()
    services.start(campaign.pk, actor="bench")
    wait_until(
        lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE,
        "the campaign to finish",
    )
    accepted = fake.accepted()
    arrivals = [at for at, _, _ in fake.arrivals()]
    counts = Campaign.objects.get(pk=campaign.pk).counts()
    first, last = min(arrivals), max(arrivals)
    return {
        "campaign": campaign.pk,
        "sent": counts["sent"],
        "not_sent": count - counts["sent"],
        **exactly_once(accepted, count),
        "requests": len(arrivals),
        "wall_s": round(last - started, 3),
        "end_to_end_per_s": round(count / (last - started), 1),
        "achieved_per_s": round((len(arrivals) - 1) / (last - first), 2),
        "most_messages_in_1s": busiest_window(arrivals),
        "cpu_per_message": cpu.per_message(count),
    }


def run_at_limit(
    fake: Fake,
    workers: Workers,
    meter: Callable[[], CpuMeter],
    redis_url: str,
    *,
    rate: str,
    count: int,
    resend: bool = False,
) -> dict[str, Any]:
    """A campaign at `rate` to `count` artists (those notified before too: `resend`),
    judged on the arrival of every message at the provider and on the limiter's grants."""
    from events.rate_limits import parse_rate

    item = parse_rate(rate)
    limit = item.amount / item.get_expiry()
    sizes = workers.log_sizes()
    with GrantLog(redis_url, rate) as grants:
        outcome = run_campaign(fake, meter, rate=rate, resend=resend, count=count)
    arrivals = sorted(at for at, _, _ in fake.arrivals())
    granted = grants.times()
    return {
        **outcome,
        "limit_per_s": limit,
        "send_tasks_per_message": round(workers.send_tasks_since(sizes) / count, 3),
        "most_slots_in_1s": most_slots_in_one_second(workers.slots(sizes)),
        "at_provider": rate_figures(arrivals, limit),
        "limiter_grants": rate_figures(granted, limit),
        "arrival_after_grant_ms": lateness_summary(granted, arrivals),
    }


def describe(figures: dict[str, Any], limit: float, *, target: float, measure: str) -> str:
    """One line for a phase at a limit: the figure it is judged on (`measure`) against
    `target` of the limit, the other rate beside it, and the busiest 1-s window."""
    judged = figures.get(measure, 0.0)
    verdict = "PASS" if judged >= target * limit else "FAIL"
    return (
        f"{measure} {judged}/s, {judged / limit:.1%} of {limit:g}/s (target >= {target:.0%})"
        f" {verdict}; {figures.get('achieved_per_s')}/s over {figures.get('full_seconds')}"
        f" full seconds, {figures.get('first_to_last_per_s')}/s first to last;"
        f" busiest 1-s window {figures.get('busiest_1s')} (limit {limit:g})"
    )


def limit_failures(
    phase: str, outcome: dict[str, Any], *, target: float, measure: str
) -> list[str]:
    """What a phase at a limit failed: the achieved rate (`measure` of the figures) under
    `target` of the limit, or more messages in one 1-s window than the limit, at the
    provider or in the limiter's grants."""
    limit = outcome["limit_per_s"]
    failures = []
    for view in ("at_provider", "limiter_grants"):
        figures = outcome[view]
        achieved = figures.get(measure, 0.0)
        if achieved < target * limit:
            failures.append(
                f"{phase} {view}: achieved {achieved}/s, under {target:.0%} of {limit:g}/s"
            )
        if figures.get("busiest_1s", 0) > limit:
            failures.append(
                f"{phase} {view}: {figures['busiest_1s']} messages in one 1-s window, "
                f"over the limit of {limit:g}"
            )
    if outcome.get("most_slots_in_1s", 0) > limit:
        failures.append(f"{phase}: the limiter granted more than the limit in one second")
    return failures


def run_post_office(fake: Fake, count: int) -> dict[str, Any]:
    from django.conf import settings

    # Only the benchmark needs post_office (a dev dependency without type hints).
    from post_office import mail  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from post_office.models import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        STATUS,
        Email,
    )

    from accounts.models import ArtistProfile
    from campaigns.messages import build
    from campaigns.models import Campaign

    fake.reset()
    cpu = CpuMeter(None, fake, None)
    queued_at = time.time()
    kwargs = []
    template = Campaign()
    # The artists of phases (a) and (b): those of (d) were seeded after them.
    for profile in ArtistProfile.objects.select_related("user").order_by("pk")[:count]:
        message = build(template, profile)
        kwargs.append(
            {
                "recipients": message.to,
                "sender": settings.DEFAULT_FROM_EMAIL,
                "subject": message.subject,
                "message": message.body,
                "html_message": message.alternatives[0][0],
                "headers": dict(message.extra_headers),
            }
        )
    mail.send_many(kwargs)
    sending_at = time.time()
    mail.send_queued_mail_until_done(processes=WORKERS)
    finished_at = time.time()
    accepted = fake.accepted()
    return {
        "sent": Email.objects.filter(status=STATUS.sent).count(),
        **exactly_once(accepted, count),
        "queue_s": round(sending_at - queued_at, 3),
        "send_s": round(finished_at - sending_at, 3),
        "send_per_s": round(count / (finished_at - sending_at), 1),
        "end_to_end_per_s": round(count / (finished_at - queued_at), 1),
        "cpu_per_message": cpu.per_message(count),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=DEFAULT_RECIPIENTS)
    parser.add_argument("--rate", default=DEFAULT_RATE, help="phase (a)'s limit, e.g. 100/s")
    parser.add_argument(
        "--fast-rate", default=DEFAULT_FAST_RATE, help="phase (a_fast)'s limit, e.g. 1000/s"
    )
    parser.add_argument(
        "--limit-recipients",
        type=int,
        default=DEFAULT_LIMIT_RECIPIENTS,
        help="phase (d)'s artists, emailed at --limit-rate",
    )
    parser.add_argument("--limit-rate", default=LIMIT_RATE, help="phase (d)'s limit, e.g. 50/s")
    parser.add_argument(
        "--quick", action="store_true", help="1,000 recipients at 50/s, then 300 at 50/s"
    )
    parser.add_argument("--pool", default=POOL, choices=["prefork", "threads"])
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help="processes or threads per worker"
    )
    parser.add_argument("--post-office-batch", type=int, default=100)
    args = parser.parse_args(argv)
    count, rate, fast_rate = args.recipients, args.rate, args.fast_rate
    limit_count, limit_rate = args.limit_recipients, args.limit_rate
    if args.quick:
        count, rate, limit_count = QUICK_RECIPIENTS, QUICK_RATE, QUICK_LIMIT_RECIPIENTS
        fast_rate = QUICK_FAST_RATE
    if count < 2 or limit_count < 2:
        parser.error("--recipients and --limit-recipients must be at least 2")
    private_redis = PrivateRedis().start()
    try:
        fake = Fake()
    except BenchError:
        private_redis.stop()
        raise
    env = environment(fake.api_url, private_redis.url)
    workers: Workers | None = None
    redis_pid = private_redis.process.pid if private_redis.process else None

    def meter() -> CpuMeter:
        return CpuMeter(workers, fake, redis_pid)

    results: dict[str, Any] = {
        "recipients": count,
        "rate": rate,
        "fast_rate": fast_rate,
        "limit_recipients": limit_count,
        "limit_rate": limit_rate,
        "workers": {
            "processes": WORKERS,
            "pool": args.pool,
            "concurrency": args.concurrency,
            "database_pool": args.pool == "threads",
        },
        "post_office": {"processes": WORKERS, "batch_size": args.post_office_batch},
        "fake_provider_niceness": fake.niceness,
    }
    failures: list[str] = []
    try:
        recreate_database()
        setup_django(env, args.post_office_batch)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        seed(count)
        log(f"{count:,} artists seeded; starting {WORKERS} workers")
        workers = Workers(env, args.pool, args.concurrency)
        for phase, at, resend in (("a_rate_limited", rate, False), ("a_fast", fast_rate, True)):
            log(f"({phase}) campaign at {at}")
            outcome = run_at_limit(
                fake, workers, meter, private_redis.url, rate=at, count=count, resend=resend
            )
            results[phase] = outcome
            judged: dict[str, Any] = {
                "target": 1 - RATE_TOLERANCE,
                "measure": "first_to_last_per_s",
            }
            limit = outcome["limit_per_s"]
            log(f"({phase}) at_provider: {describe(outcome['at_provider'], limit, **judged)}")
            failures += limit_failures(phase, outcome, **judged)
        log("(b) campaign without a limit")
        results["b_unlimited"] = run_campaign(fake, meter, rate="", resend=True, count=count)
        log(f"(d) {limit_count:,} more artists, a campaign at {limit_rate}")
        seed(limit_count, first=count)
        at_limit = run_at_limit(
            fake, workers, meter, private_redis.url, rate=limit_rate, count=limit_count
        )
        results["d_at_limit"] = at_limit
        judged = {"target": LIMIT_TARGET, "measure": "achieved_per_s"}
        for view in ("at_provider", "limiter_grants"):
            log(f"(d) {view}: {describe(at_limit[view], at_limit['limit_per_s'], **judged)}")
        failures += limit_failures("(d)", at_limit, **judged)
        workers.stop()
        workers = None
        log("(c) django-post_office")
        results["c_post_office"] = run_post_office(fake, count)
        expected = {
            "a_rate_limited": count,
            "a_fast": count,
            "b_unlimited": count,
            "c_post_office": count,
            "d_at_limit": limit_count,
        }
        for phase, audience in expected.items():
            outcome = results[phase]
            if outcome["duplicates"] or outcome["addresses"] != audience:
                failures.append(
                    f"{phase}: {outcome['addresses']} of {audience} addresses reached, "
                    f"{outcome['duplicates']} duplicates"
                )
        ours = results["b_unlimited"]["end_to_end_per_s"]
        theirs = results["c_post_office"]["end_to_end_per_s"]
        ratio = ours / theirs
        results["unlimited_vs_post_office"] = round(ratio, 2)
        verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
        log(
            f"unlimited end to end: {ours}/s, django-post_office {theirs}/s: "
            f"{ratio:.2f}x (target >= {TARGET_RATIO}x) {verdict}"
        )
        for phase in ("a_rate_limited", "a_fast", "b_unlimited", "d_at_limit", "c_post_office"):
            log(f"{phase}: CPU per message {results[phase]['cpu_per_message']}")
        if ratio < TARGET_RATIO:
            failures.append(
                f"(b) unlimited at {ratio:.2f}x django-post_office, under {TARGET_RATIO}x"
            )
    except BenchError as exc:
        failures.append(str(exc))
    finally:
        if workers is not None:
            workers.stop()
        fake.stop()
        private_redis.stop()
        from django.db import connections

        connections.close_all()
        recreate_database(drop_only=True)
    results["failures"] = failures
    results_file = RESULTS_FILE.with_stem("campaigns-quick") if args.quick else RESULTS_FILE
    write_json(results_file, results)
    print(json.dumps(results, indent=2))
    for failure in failures:
        log(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
