"""Benchmark the email campaign sender, and django-post_office beside it.

Run:  .venv/bin/python bench/campaigns_bench.py [--recipients N] [--rate 100/s | --quick]
(default 10,000 recipients at 100/s; --quick: 1,000 at 50/s, a smoke run for CI).

Both systems run in one run on this machine, against the same things:
- a fresh PostgreSQL database `bench_campaigns` (created, and dropped at the end) holding
  N approved artists who must connect SumUp;
- Redis database 8 for the broker, results and the rate limiter (it must be empty at the
  start, so no other benchmark is using it; flushed at the end);
- the fake Brevo API (campaigns.fake_esp) in its own process on 127.0.0.1, reached
  through anymail's real Brevo backend;
- 2 worker processes: for campaigns two `celery -A jobs worker` as the Procfile runs
  them (prefork, WORKER_CONCURRENCY processes each, 3 by default; --pool, --concurrency;
  `--pool threads` adds `DATABASE_POOL=1`); for post_office
  `send_queued_mail_until_done(processes=2)` (its default 5 threads per process,
  BATCH_SIZE 100 unless --post-office-batch).

Phases:
(a) a campaign at --rate. Achieved rate: (sends - 1) / (last - first request) at the
    provider, which must be within 5% of the limit. No 1 s window may hold more slots
    than the limit allows (taken from the workers' slot log: each slot is stamped
    between two logged instants; only slots certainly inside a window are counted).
    Also shown, not judged: the most requests the provider saw in 1 s, which adds the
    machine's scheduling delays between a slot and its request.
(b) the same audience again (a `--resend` campaign) with no rate limit: messages per
    second end to end, from `start` until the provider accepted the last one.
(c) django-post_office sends the same N messages (rendered by the same code): queued
    with send_many, then sent; messages per second for the send alone and end to end.
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
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import redis

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "campaigns.json"
LOG_DIR = PROJECT_DIR / "var" / "bench-campaigns"

SERVER = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "bench_campaigns"
REDIS_URL = "redis://127.0.0.1:6379/8"
FAKE_PORT = 8791
WORKERS = 2
# The workers run as the Procfile configures them: the default (prefork) pool with
# WORKER_CONCURRENCY processes each. Other pools and sizes: --pool, --concurrency.
POOL, CONCURRENCY = "prefork", int(os.environ.get("WORKER_CONCURRENCY") or 3)
CELERY = Path(sys.executable).parent / "celery"
DEFAULT_RECIPIENTS, QUICK_RECIPIENTS = 10_000, 1_000
DEFAULT_RATE, QUICK_RATE = "100/s", "50/s"
RATE_TOLERANCE = 0.05  # the achieved rate must be within this share of the limit
PHASE_TIMEOUT_S = 1800.0
POLL_S = 0.2
SLOT = re.compile(r"email slot at .* granted between ([0-9.]+) and ([0-9.]+)")


class BenchError(RuntimeError):
    """A step failed or a check did not hold."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def environment(fake_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"{SERVER}/{DB_NAME}",
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        "DEBUG": "false",
        "SECRET_KEY": "bench-campaigns-secret-key-not-for-production",
        "SUMUP_TOKEN_KEYS": "aBRe9bTSlE-pZ5N5tH1XWwFJ2UvQ5o5mQjv2Bq8Q6Ac=",
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


def seed(count: int) -> None:
    from django.contrib.auth.hashers import make_password

    from accounts.models import ArtistProfile, User

    users = [
        User(
            username=f"bench{n}",
            email=f"bench{n}@example.com",
            password=make_password(None),  # unusable
            user_type=User.UserType.ARTIST,
        )
        for n in range(count)
    ]
    User.objects.bulk_create(users, batch_size=2000)
    profiles = [
        ArtistProfile(user=user, display_name=f"Bench Artist {n}", is_approved=True)
        for n, user in enumerate(User.objects.order_by("pk"))
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
            [sys.executable, "-m", "campaigns.fake_esp", "--port", str(FAKE_PORT)],
            cwd=PROJECT_DIR / "webapp",
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
        worker_env["LOG_LEVEL"] = "INFO"  # the slot log (campaigns.sending) is INFO
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

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def most_in_one_second(times: Sequence[float]) -> int:
    ordered, start, most = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


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
        "most_requests_in_1s": most_in_one_second(arrivals),
    }


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
    for profile in ArtistProfile.objects.select_related("user").order_by("pk"):
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
    parser.add_argument("--quick", action="store_true", help="1,000 recipients at 50/s")
    parser.add_argument("--pool", default=POOL, choices=["prefork", "threads"])
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help="processes or threads per worker"
    )
    parser.add_argument("--post-office-batch", type=int, default=100)
    args = parser.parse_args(argv)
    count, rate = args.recipients, args.rate
    if args.quick:
        count, rate = QUICK_RECIPIENTS, QUICK_RATE
    broker = redis.Redis.from_url(REDIS_URL)
    if broker.dbsize():
        log(f"Redis {REDIS_URL} is not empty: another benchmark may be using it. Not started.")
        return 2
    fake = Fake()
    env = environment(fake.api_url)
    workers: Workers | None = None
    results: dict[str, Any] = {
        "recipients": count,
        "rate": rate,
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
        workers.stop()
        workers = None
        log("(c) django-post_office")
        results["c_post_office"] = run_post_office(fake, count)
        for phase in ("a_rate_limited", "b_unlimited", "c_post_office"):
            outcome = results[phase]
            if outcome["duplicates"] or outcome["addresses"] != count:
                failures.append(
                    f"{phase}: {outcome['addresses']} of {count} addresses reached, "
                    f"{outcome['duplicates']} duplicates"
                )
    except BenchError as exc:
        failures.append(str(exc))
    finally:
        if workers is not None:
            workers.stop()
        fake.stop()
        from django.db import connections

        connections.close_all()
        recreate_database(drop_only=True)
        broker.flushdb()
    results["failures"] = failures
    results_file = RESULTS_FILE.with_stem("campaigns-quick") if args.quick else RESULTS_FILE
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    for failure in failures:
        log(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
