"""What a production rehearsal runs on, each part owned by the test that starts it: a
private Redis, a database of its own on the shared PostgreSQL server, and `manage.py`
run against them as an operator would run it.

The test process's own Django points at pytest's test database; the rehearsal's data is
read here with psycopg, and written only through `manage.py` (a command, or a short
`shell -c` snippet), so every row is written by the project's own code.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import psycopg
import redis
from django.conf import settings
from psycopg import sql

from .procfile import PROJECT_DIR

READY_TIMEOUT = 10.0  # seconds for redis-server to answer
COMMAND_TIMEOUT = 180.0  # seconds a manage.py command may take


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateRedis:
    """`redis-server` on a free loopback port, for this test alone: no other test's
    queue, cache or lock shares it. Without a `directory`, no snapshot and no
    append-only file: a restart comes back empty. With one, append-only persistence
    fsynced every second, as docker-compose runs it: stopped and started again, it comes
    back with its keys (the Celery queue among them)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--daemonize", "no"]
        if self.directory is None:
            argv += ["--appendonly", "no"]
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            argv += ["--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")]
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while True:
                try:
                    client.ping()
                    return self
                except (redis.ConnectionError, redis.BusyLoadingError):  # loading its file
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM, as `docker stop` sends: a persistent Redis writes its file and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RehearsalDatabase:
    """`rehearsal_<random>` on the PostgreSQL server the suite uses; dropped (WITH FORCE:
    a process killed mid-query may leave a session) when done. The server itself is
    never touched."""

    def __init__(self) -> None:
        configured = settings.DATABASES["default"]
        self.name = f"rehearsal_{uuid.uuid4().hex[:12]}"
        self.params: dict[str, Any] = {
            "host": configured.get("HOST") or "127.0.0.1",
            "port": int(configured.get("PORT") or 5432),
            "user": configured.get("USER") or "postgres",
            "password": configured.get("PASSWORD") or None,
        }
        user = quote(self.params["user"], safe="")
        password = f":{quote(self.params['password'], safe='')}" if self.params["password"] else ""
        self.url = (
            f"postgres://{user}{password}@{self.params['host']}:{self.params['port']}/{self.name}"
        )

    def _server(self) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.params, dbname="postgres", autocommit=True)

    def create(self) -> RehearsalDatabase:
        with self._server() as server:
            server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return self

    def drop(self) -> None:
        with self._server() as server:
            server.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(**self.params, dbname=self.name, autocommit=True) as connection:
            return connection.execute(query.encode(), params).fetchall()

    def value(self, query: str, params: Sequence[Any] = ()) -> Any:
        found = self.rows(query, params)
        return found[0][0] if found else None

    def table_counts(self) -> dict[str, int]:
        """Rows in every table of the schema, found through information_schema."""
        with psycopg.connect(**self.params, dbname=self.name, autocommit=True) as connection:
            tables = [
                name
                for (name,) in connection.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
                    "ORDER BY table_name"
                ).fetchall()
            ]
            counts: dict[str, int] = {}
            for table in tables:
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                row = connection.execute(query).fetchone()
                assert row is not None
                counts[table] = int(row[0])
            return counts

    def __enter__(self) -> RehearsalDatabase:
        return self.create()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.drop()


def manage(
    env: Mapping[str, str], *args: str, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """`python webapp/manage.py ARGS` as an operator runs it, with the rehearsal's
    environment (`python` is the one its PATH finds); exit status and output returned."""
    return subprocess.run(
        ["python", "webapp/manage.py", *args],
        cwd=PROJECT_DIR,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def shell(env: Mapping[str, str], code: str) -> Any:
    """Run a snippet in `manage.py shell`; it prints one JSON value last, returned here."""
    result = manage(env, "shell", "-c", code)
    if result.returncode != 0:
        raise AssertionError(f"manage.py shell failed: {output(result)}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        raise AssertionError(f"manage.py shell printed nothing: {output(result)}")
    return json.loads(lines[-1])
