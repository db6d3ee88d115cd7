"""Faults a chaos test injects, each into a service of its own: a PostgreSQL cluster and
a Redis that the test starts, stops and restarts (never the machine's shared ones), a
fake SumUp that holds a refresh's answer while the worker is killed, and readings of
what the fakes received.

    with PrivatePostgres() as postgres, PrivateRedis(tmp_path / "redis"):
        postgres.stop_immediately()         # a crash-like outage of the database
        postgres.start()
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import psycopg
import redis

from accounts.sumup.refresh_journal import JOURNAL_KEY
from fakes.brevo import FakeBrevo
from fakes.sumup import FakeSumUp, token_hash
from fakes.sumup.wire import Request, Response

from .rehearsal import free_port

READY_TIMEOUT = 30.0  # seconds for a started service to answer
POSTGRES_USER = "postgres"  # initdb refuses root: the cluster runs as this user


def _as_postgres(command: str) -> subprocess.CompletedProcess[str]:
    argv = ["su", POSTGRES_USER, "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own on a free port, which it may crash."""

    def __init__(self) -> None:
        # Not under pytest's temporary directory: that is private to root, and the
        # cluster's user must reach its data directory.
        self.directory = Path(tempfile.mkdtemp(prefix="chaos-postgres-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.started = False

    def url(self, database: str) -> str:
        return f"postgres://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=POSTGRES_USER,
            dbname=database,
            autocommit=True,
            connect_timeout=3,
        )

    def _run(self, command: str) -> None:
        result = _as_postgres(command)
        if result.returncode != 0:
            log = (self.directory / "log").read_text() if (self.directory / "log").exists() else ""
            raise RuntimeError(f"{command}: {result.stdout}{result.stderr}\n{log[-2000:]}")

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.directory, POSTGRES_USER)
        data = shlex.quote(str(self.data))
        # fsync off: a throwaway cluster; an immediate stop still loses no committed row,
        # the server itself replays its WAL on start.
        self._run(f"initdb -D {data} -A trust -U {POSTGRES_USER} --no-sync >/dev/null")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("fsync = off\nmax_connections = 200\nshared_buffers = 128MB\n")
        return self.start()

    def start(self) -> PrivatePostgres:
        directory = shlex.quote(str(self.directory))
        options = shlex.quote(f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1")
        self._run(
            f"pg_ctl -D {shlex.quote(str(self.data))} -o {options} -l {directory}/log -w start"
        )
        self.started = True
        return self

    def stop_immediately(self) -> None:
        """Stop as a crash does: every connection cut, no checkpoint."""
        self._run(f"pg_ctl -D {shlex.quote(str(self.data))} -m immediate -w stop")
        self.started = False

    def stop(self) -> None:
        if self.started:
            _as_postgres(f"pg_ctl -D {shlex.quote(str(self.data))} -m fast -w stop")
            self.started = False

    def create_database(self, name: str, template: str | None = None) -> str:
        with self.connect() as server:
            if template is None:
                server.execute(f'CREATE DATABASE "{name}"')
            else:
                server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def __enter__(self) -> PrivatePostgres:
        return self.init()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class HeldAnswer:
    """One refresh the fake SumUp has answered (the token rotated) but not yet sent."""

    grant_id: str
    answered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    sent: threading.Event = field(default_factory=threading.Event)


class AnswerHolder:
    """Wraps the fake SumUp's request handling so the test can hold the next refresh's
    answer after SumUp acted on it: the window between SumUp's answer and the store."""

    HOLD_TIMEOUT = 30.0  # seconds an answer is held at most: a test that forgot it goes on

    def __init__(self, fake: FakeSumUp) -> None:
        self._fake = fake
        self._handle = fake.app.handle
        self._lock = threading.Lock()
        self._next: HeldAnswer | None = None
        # (time.monotonic() as it was sent, grant) of every refresh the fake answered
        self.answers: list[tuple[float, str]] = []
        fake.app.handle = self._held_handle  # type: ignore[method-assign]

    def hold_next_refresh(self) -> HeldAnswer:
        held = HeldAnswer(grant_id="")
        with self._lock:
            self._next = held
        return held

    def cancel(self) -> None:
        """No refresh came to hold: the next one goes through unheld."""
        with self._lock:
            self._next = None

    def _held_handle(self, request: Request) -> Response:
        response = self._handle(request)
        if request.path != "/token" or response.status != 200:
            return response
        form = parse_qs(request.body.decode(errors="replace"))
        if form.get("grant_type") != ["refresh_token"]:
            return response
        grant = self._fake.state.grant_for_token(form["refresh_token"][0])
        grant_id = grant.id if grant else ""
        with self._lock:
            held, self._next = self._next, None
        if held is not None:
            held.grant_id = grant_id
            held.answered.set()
            held.release.wait(self.HOLD_TIMEOUT)
            held.sent.set()
        with self._lock:
            self.answers.append((time.monotonic(), grant_id))
        return response

    def last_answers(self) -> dict[str, float]:
        """The instant (time.monotonic()) each grant's last refresh answer was sent."""
        with self._lock:
            return {grant: at for at, grant in sorted(self.answers)}


class JournalWatch:
    """Reads every command a Redis runs (MONITOR) and keeps when each artist's SumUp
    answer reached the refresh journal (time.monotonic() as read here, so never before
    it happened). A grant lost though its answer was journaled is the store's fault,
    never the in-flight window's: the watch tells the two apart exactly, where the
    time of a kill alone cannot on a loaded machine."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._writes: dict[int, list[float]] = {}  # artist profile id -> instants
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="journal-watch", daemon=True)

    def start(self) -> JournalWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # the thread ends with its next command, or with the test

    def journaled_since(self, profile_id: int, instant: float) -> bool:
        with self._lock:
            return any(at >= instant for at in self._writes.get(profile_id, []))

    def _watch(self) -> None:
        journal = f"HSET {JOURNAL_KEY} "
        while not self._stopping.is_set():
            client = redis.Redis(port=self.port, socket_connect_timeout=1)
            try:
                with client.monitor() as monitor:
                    for command in monitor.listen():
                        if self._stopping.is_set():
                            return
                        text = str(command.get("command", ""))
                        if text.startswith(journal):
                            profile_id = int(text[len(journal) :].split(" ", 1)[0])
                            with self._lock:
                                self._writes.setdefault(profile_id, []).append(time.monotonic())
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                time.sleep(0.1)  # stopped or restarting: watch again once it answers
            finally:
                client.close()


def refused_reuse_by_grant(fake: FakeSumUp) -> Counter[str]:
    """Refresh calls the fake refused because their token had been rotated out, by grant:
    each is a grant the site lost (it held only a spent refresh token)."""
    state = fake.state
    refused: Counter[str] = Counter()
    with state.lock:
        calls = state.counters.refresh_calls_by_token
        for record in state.refresh_tokens.values():
            if record.replaced_by is None:
                continue
            extra = calls.get(token_hash(record.token), 0) - record.uses
            if extra > 0:
                refused[record.grant_id] += extra
    return refused


def live_refresh_tokens(fake: FakeSumUp) -> set[str]:
    """Refresh tokens the fake would still honour (not rotated out, grant not revoked)."""
    state = fake.state
    with state.lock:
        return {
            token
            for token, record in state.refresh_tokens.items()
            if record.replaced_by is None and not state.grants[record.grant_id].revoked
        }


def provider_duplicates(esp: FakeBrevo) -> Counter[str]:
    """Addresses the provider was asked to send to, and took, more than once: what a
    provider without idempotency keys would have sent twice."""
    taken = Counter(
        arrival.to for arrival in list(esp.state.arrivals) if 200 <= arrival.status < 300
    )
    return Counter({address: n - 1 for address, n in taken.items() if n > 1})


def reached_provider(esp: FakeBrevo) -> set[str]:
    return {arrival.to for arrival in list(esp.state.arrivals)}


def http_status(url: str, timeout: float = 5.0) -> int:
    """The HTTP status a GET answers with; 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def kill_group(pid: int, signum: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
