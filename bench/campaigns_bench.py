"""Benchmark the email campaign sender, and django-post_office beside it.

Run:  .venv/bin/python bench/campaigns_bench.py [--recipients N] [--rate 100/s]
      [--limit-recipients N] [--limit-rate 50/s] [--quick]
(default 10,000 recipients at 100/s and 2,000 more at 50/s; --quick: 1,000 at 50/s and
300 more, a smoke run for CI).

Both systems run in one run on this machine, against the same things:
- a fresh PostgreSQL database `bench_campaigns` (created, and dropped at the end) holding
  N approved artists who must connect SumUp;
- a Redis of its own (`redis-server` on a free loopback port, stopped at the end) for the
  broker, results and the rate limiter, so no test or other benchmark shares its queue
  or its limiter's windows;
- the fake Brevo API (fakes.brevo) in its own process on 127.0.0.1, reached
  through anymail's real Brevo backend;
- 2 worker processes: for campaigns two `celery -A jobs worker` as the Procfile runs
  them (prefork, WORKER_CONCURRENCY processes each, 3 by default; --pool, --concurrency;
  `--pool threads` adds `DATABASE_POOL=1`); for post_office
  `send_queued_mail_until_done(processes=2)` (its default 5 threads per process,
  BATCH_SIZE 100 unless --post-office-batch).

Phases:
(a) a campaign at --rate. Achieved rate: (sends - 1) / (last - first request) at the
    provider, which must be within 5% of the limit (sends are scheduled at 95.7% of a
    per-second rate, leaving 30 ms for lateness: campaigns.rate). No 1 s window may
    hold more slots than the limit allows (taken from the workers' slot log: each slot
    is stamped between two logged instants; only slots certainly inside a window are
    counted).
    Also shown, not judged: the most requests the provider saw in 1 s, which adds the
    machine's scheduling delays between a slot and its request.
(b) the same audience again (a `--resend` campaign) with no rate limit: messages per
    second end to end, from `start` until the provider accepted the last one.
(c) django-post_office sends the same N messages (rendered by the same code): queued
    with send_many, then sent; messages per second for the send alone and end to end.
(d) at the limit: --limit-recipients more artists (2,000 keep 50/s busy for 40 s) get a
    campaign at --limit-rate, run by the same workers right after (b), whose unlimited
    rate shows the machine's ceiling beside it. Judged where the provider counts, on the
    arrival time of every send request at the fake: the achieved rate (requests in the
    full seconds after the first, per second) at least 90% of the limit, and no 1 s
    window [t, t + 1 s), anchored at every arrival, above the limit. The same figures
    from the limiter's own log of grants (kept in Redis, polled), how late
    each request arrived after its grant, and the send tasks run per message (a task
    over the rate re-queues itself) are shown beside them.
Every phase: every artist's message accepted by the provider exactly once.
Results are printed and written to bench/results/campaigns.json (campaigns-quick.json
for --quick); exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import bisect
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
WORKERS = 2
# The workers run as the Procfile configures them: the default (prefork) pool with
# WORKER_CONCURRENCY processes each. Other pools and sizes: --pool, --concurrency.
POOL, CONCURRENCY = "prefork", int(os.environ.get("WORKER_CONCURRENCY") or 3)
CELERY = VENV_BIN / "celery"
DEFAULT_RECIPIENTS, QUICK_RECIPIENTS = 10_000, 1_000
DEFAULT_RATE, QUICK_RATE = "100/s", "50/s"
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
SLOT = re.compile(r"email slot at .* granted between ([0-9.]+) and ([0-9.]+)")
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


class Fake:
    """The fake Brevo in its own process."""

    def __init__(self) -> None:
        self.base = f"http://127.0.0.1:{FAKE_PORT}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fakes.brevo", "--port", str(FAKE_PORT)],
            cwd=PROJECT_DIR,
            stdout=subprocess.DEVNULL,
        )
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

    def slots(self) -> list[tuple[float, float]]:
        found = []
        for path in self.logs:
            found += [(float(b), float(a)) for b, a in SLOT.findall(path.read_text())]
        return found

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
        # Each poll sees most grants again; two in one µs (none yet seen) would count once.
        self.grants: set[bytes] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.grants.update(cast(list[bytes], self.client.lrange(self.key, 0, -1)))
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
        return sorted(int(stamp) / 1_000_000 for stamp in self.grants)


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


def run_campaign(fake: Fake, *, rate: str, resend: bool, count: int) -> dict[str, Any]:
    from campaigns import services
    from campaigns.models import Campaign

    fake.reset()
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
        "most_requests_in_1s": busiest_window(arrivals),
    }


def run_at_limit(
    fake: Fake, workers: Workers, redis_url: str, *, rate: str, count: int, first: int
) -> dict[str, Any]:
    """Phase (d): `count` artists not yet notified, emailed by a campaign at `rate`."""
    from events.rate_limits import parse_rate

    seed(count, first=first)
    item = parse_rate(rate)
    limit = item.amount / item.get_expiry()
    sizes = workers.log_sizes()
    with GrantLog(redis_url, rate) as grants:
        outcome = run_campaign(fake, rate=rate, resend=False, count=count)
    arrivals = sorted(at for at, _, _ in fake.arrivals())
    granted = grants.times()
    return {
        **outcome,
        "limit_per_s": limit,
        "send_tasks_per_message": round(workers.send_tasks_since(sizes) / count, 2),
        "at_provider": rate_figures(arrivals, limit),
        "limiter_grants": rate_figures(granted, limit),
        "arrival_after_grant_ms": lateness_summary(granted, arrivals),
    }


def describe(figures: dict[str, Any], limit: float) -> str:
    return (
        f"{figures.get('achieved_per_s')}/s over {figures.get('full_seconds')} full seconds,"
        f" {figures.get('of_limit', 0.0):.1%} of {limit:g}/s (target >= {LIMIT_TARGET:.0%});"
        f" busiest 1-s window {figures.get('busiest_1s')} (limit {limit:g})"
    )


def at_limit_failures(outcome: dict[str, Any]) -> list[str]:
    limit = outcome["limit_per_s"]
    failures = []
    for view in ("at_provider", "limiter_grants"):
        figures = outcome[view]
        if figures.get("of_limit", 0.0) < LIMIT_TARGET:
            failures.append(
                f"(d) {view}: achieved {figures.get('achieved_per_s')}/s, "
                f"under {LIMIT_TARGET:.0%} of {limit:g}/s"
            )
        if figures.get("busiest_1s", 0) > limit:
            failures.append(
                f"(d) {view}: {figures['busiest_1s']} sends in one 1-s window, "
                f"over the limit of {limit:g}"
            )
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
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=DEFAULT_RECIPIENTS)
    parser.add_argument("--rate", default=DEFAULT_RATE, help="phase (a)'s limit, e.g. 100/s")
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
    count, rate = args.recipients, args.rate
    limit_count, limit_rate = args.limit_recipients, args.limit_rate
    if args.quick:
        count, rate, limit_count = QUICK_RECIPIENTS, QUICK_RATE, QUICK_LIMIT_RECIPIENTS
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
    results: dict[str, Any] = {
        "recipients": count,
        "rate": rate,
        "limit_recipients": limit_count,
        "limit_rate": limit_rate,
        "workers": {
            "processes": WORKERS,
            "pool": args.pool,
            "concurrency": args.concurrency,
            "database_pool": args.pool == "threads",
        },
        "post_office": {"processes": WORKERS, "batch_size": args.post_office_batch},
    }
    failures: list[str] = []
    try:
        recreate_database()
        setup_django(env, args.post_office_batch)
        from django.core.management import call_command

        from events.rate_limits import parse_rate

        call_command("migrate", verbosity=0)
        seed(count)
        log(f"{count:,} artists seeded; starting {WORKERS} workers")
        workers = Workers(env, args.pool, args.concurrency)
        log(f"(a) campaign at {rate}")
        limited = run_campaign(fake, rate=rate, resend=False, count=count)
        limited["most_slots_in_1s"] = most_slots_in_one_second(workers.slots())
        results["a_rate_limited"] = limited
        item = parse_rate(rate)
        limit = item.amount / item.get_expiry()
        if limited["achieved_per_s"] < limit * (1 - RATE_TOLERANCE):
            failures.append(f"(a) achieved {limited['achieved_per_s']}/s, under 95% of {rate}")
        if limited["most_slots_in_1s"] > limit:
            failures.append("(a) the limiter granted more than the limit in one second")
        log("(b) campaign without a limit")
        results["b_unlimited"] = run_campaign(fake, rate="", resend=True, count=count)
        log(f"(d) {limit_count:,} more artists, a campaign at {limit_rate}")
        at_limit = run_at_limit(
            fake, workers, private_redis.url, rate=limit_rate, count=limit_count, first=count
        )
        results["d_at_limit"] = at_limit
        for view in ("at_provider", "limiter_grants"):
            log(f"(d) {view}: {describe(at_limit[view], at_limit['limit_per_s'])}")
        failures += at_limit_failures(at_limit)
        workers.stop()
        workers = None
        log("(c) django-post_office")
        results["c_post_office"] = run_post_office(fake, count)
        expected = {
            "a_rate_limited": count,
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
