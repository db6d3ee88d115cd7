"""Real `celery -A jobs worker` processes for tests, on the test database.

The in-process `project_worker` fixture is one worker in a thread of the test process; some
faults need more: several workers racing for the same rows, or a worker that dies with
`kill -9` in the middle of a task. `WorkerProcesses` starts N workers as subprocesses,
each in its own process group, against the same test database, Redis and SumUp the test
uses (read from Django's settings inside the test: pytest-django has renamed the database
by then), waits until every one answers a ping, and stops them at the end: TERM (a warm
shutdown that lets running tasks finish), then KILL.

Use it from a `django_db(transaction=True)` test, so the workers see committed rows::

    with WorkerProcesses(2, log_dir=tmp_path / "workers", mail_dir=tmp_path / "mail") as workers:
        ...
        workers.kill(0)                 # as if the machine under worker 0 died
    messages = sent_mail(tmp_path / "mail")

Mail the workers send goes to `mail_dir` (one .eml file per message) when given, through
`MailDirBackend` below; the workers import this module for it (tests/ is on their path).
"""

from __future__ import annotations

import contextlib
import email
import email.message
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

TESTS_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = TESTS_DIR.parent
CELERY = Path(sys.executable).parent / "celery"
MAIL_DIR_VARIABLE = "TEST_WORKER_MAIL_DIR"

READY_TIMEOUT = 60.0  # seconds: Django and Celery start-up on a busy machine
STOP_TIMEOUT = 20.0  # seconds a warm shutdown may take before the worker is killed
PING_TIMEOUT = 1.0  # seconds each ping round waits for replies

# Settings a worker reads from the environment that a test may have changed in-process
# (pytest-django's `settings` fixture): passed on as they stand when the workers start.
PASSED_SETTINGS = (
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "SECRET_KEY",
    "SITE_URL",
    "SUMUP_BASE_URL",
    "SUMUP_API_URL",
    "SUMUP_CLIENT_ID",
    "SUMUP_CLIENT_SECRET",
    "SUMUP_REDIRECT_URI",
    "SUMUP_API_RATE_LIMIT",
    "SUMUP_REFRESH_WINDOW",
    "SUMUP_REFRESH_TOKEN_RENEW_AFTER",
    "SUMUP_REFRESH_SWEEP_INTERVAL",
    "SUMUP_REFRESH_MAX_ATTEMPTS",
    "EMAIL_BACKEND",
    "DEFAULT_FROM_EMAIL",
)


class WorkerError(RuntimeError):
    """A worker did not start, or exited when it should not have."""


class MailDirBackend(BaseEmailBackend):
    """Writes each message to its own .eml file in $TEST_WORKER_MAIL_DIR, so a test can
    read what worker processes sent (Django's file backend needs a setting for its path,
    which the environment cannot give)."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        directory = Path(os.environ[MAIL_DIR_VARIABLE])
        directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            (directory / f"{uuid.uuid4().hex}.eml").write_bytes(message.message().as_bytes())
        return len(email_messages)


def sent_mail(directory: Path) -> list[email.message.Message]:
    """What workers sent through `MailDirBackend` into `directory`."""
    return [email.message_from_bytes(path.read_bytes()) for path in directory.glob("*.eml")]


def database_url() -> str:
    """The test database as a URL, read when called: inside a test it is the test DB."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise WorkerError("worker processes need the PostgreSQL test database")
    user = quote(db.get("USER") or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(db['NAME'], safe='')}"


def worker_environment(
    overrides: Mapping[str, str] | None = None, mail_dir: Path | None = None
) -> dict[str, str]:
    """This process's environment, with the settings the test runs under on top.

    DEBUG is inherited from the environment, not taken from settings: the test runner
    turns settings.DEBUG off, which would make a worker demand production-only settings.
    """
    env = dict(os.environ)
    env.update({name: str(getattr(settings, name)) for name in PASSED_SETTINGS})
    env["DATABASE_URL"] = database_url()
    # tests/ for `support` (MailDirBackend); webapp/ too, or the test folders named after
    # the apps (tests/accounts, tests/campaigns) would be imported as those apps.
    paths = [str(PROJECT_DIR / "webapp"), str(TESTS_DIR), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    if mail_dir is not None:
        env["EMAIL_BACKEND"] = f"{__name__}.MailDirBackend"
        env[MAIL_DIR_VARIABLE] = str(mail_dir)
    env.update(overrides or {})
    return env


class WorkerProcess:
    """One `celery -A jobs worker` subprocess, leader of its own process group."""

    def __init__(self, hostname: str, args: Sequence[str], env: Mapping[str, str], log: Path):
        self.hostname = hostname
        self.log_path = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [str(CELERY), "-A", "jobs", "worker", "-n", hostname, *args],
                cwd=PROJECT_DIR,
                env=dict(env),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its pool children die with it on kill()
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """`kill -9` the worker and its pool children: no shutdown, no acks, as in a crash."""
        self._signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        """Ask for a warm shutdown (TERM) without waiting for it."""
        self._signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Warm shutdown (TERM), then KILL if it has not exited within `timeout`."""
        if not self.is_alive():
            return
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.hostname} (pid {self.pid})\n" + "\n".join(text.splitlines()[-lines:])


class WorkerProcesses:
    """N worker processes for one test; a context manager that always stops them."""

    def __init__(
        self,
        count: int,
        *,
        log_dir: Path,
        pool: str = "threads",
        concurrency: int = 4,
        env: Mapping[str, str] | None = None,
        mail_dir: Path | None = None,
    ) -> None:
        self.count = count
        self.log_dir = log_dir
        self.args = ["--pool", pool, "--concurrency", str(concurrency), "--loglevel", "INFO"]
        self.args += ["--without-gossip", "--without-mingle"]
        self.env_overrides = dict(env or {})
        self.mail_dir = mail_dir
        self.workers: list[WorkerProcess] = []

    def __getitem__(self, index: int) -> WorkerProcess:
        return self.workers[index]

    def start(self) -> WorkerProcesses:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = worker_environment(self.env_overrides, self.mail_dir)
        run = uuid.uuid4().hex[:8]  # unique names: another session may share the broker
        for i in range(self.count):
            hostname = f"test-{run}-{i}@{os.uname().nodename}"
            log = self.log_dir / f"worker-{i}.log"
            self.workers.append(WorkerProcess(hostname, self.args, env, log))
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every worker answers a ping (it consumes from the queue by then)."""
        from jobs import app

        names = {worker.hostname for worker in self.workers}
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            replies = app.control.ping(destination=sorted(names), timeout=PING_TIMEOUT) or []
            if names <= {name for reply in replies for name in reply}:
                return
            if time.monotonic() > deadline:
                raise WorkerError(f"workers not ready in {timeout:.0f} s\n{self.log_tails()}")

    def check_alive(self) -> None:
        dead = [worker for worker in self.workers if not worker.is_alive()]
        if dead:
            tails = "\n".join(worker.log_tail() for worker in dead)
            raise WorkerError(f"{len(dead)} worker(s) exited\n{tails}")

    def kill(self, index: int) -> None:
        """`kill -9` one worker mid-run; the others go on."""
        self.workers[index].kill()

    def stop(self) -> None:
        for worker in self.workers:
            if worker.is_alive():
                worker.terminate()  # all at once: their warm shutdowns overlap
        for worker in self.workers:
            worker.stop()

    def log_tails(self) -> str:
        return "\n".join(worker.log_tail() for worker in self.workers)

    def __enter__(self) -> WorkerProcesses:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def purge_queue() -> int:
    """Drop tasks left in the test broker (e.g. retries queued with a countdown) so they
    neither reach the next test's workers nor outlive the rows they name."""
    from jobs import app

    return app.control.purge() or 0
