"""The Procfile's worker and beat on a Redis and a database of their own, for tests that
stop that Redis or read what those processes write.

    with private_stack(tmp_path, {"LOG_FORMAT": "json"}) as stack:
        stack.processes.start("worker")
        stack.wait_for(lambda: stack.manage("healthcheck", "--worker").returncode == 0, ...)
        stack.redis.stop(); ...; stack.redis.start()    # the same port, an empty Redis
        stack.control.send_task("jobs.health.ping")     # on the private broker

The release line migrates the database first, as a deploy does. Whatever happens, the
processes are stopped, the Redis stopped and the database dropped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from celery import Celery
from cryptography.fernet import Fernet
from redis import Redis

from . import polling
from .procfile import ProcfileProcesses
from .rehearsal import PrivateRedis, RehearsalDatabase, manage

T = TypeVar("T")

# Celery in this process takes these from the environment over any configuration: the
# suite's own broker, not the private one.
SUITE_CELERY_VARIABLES = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")


@dataclass
class PrivateStack:
    redis: PrivateRedis
    database: RehearsalDatabase
    env: dict[str, str]
    processes: ProcfileProcesses
    control: Celery  # on the private Redis, broker and results

    def redis_client(self) -> Redis:
        return Redis.from_url(self.redis.url, socket_timeout=2)

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return manage(self.env, *args, timeout=60)

    def wait_for(self, condition: Callable[[], T], what: str, timeout: float) -> T:
        """Poll until `condition` is truthy; fail with every process's log tail."""
        return polling.wait_for(
            condition, what, timeout, interval=0.5, explain=self.processes.log_tails
        )


@contextlib.contextmanager
def private_stack(
    tmp_path: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[PrivateStack]:
    saved = {name: os.environ.pop(name) for name in SUITE_CELERY_VARIABLES if name in os.environ}
    try:
        with PrivateRedis() as private_redis, RehearsalDatabase() as database:
            env = {
                # The venv first, so `celery` and `python` are the project's own.
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
                "HOME": str(tmp_path),
                "LANG": "C.UTF-8",
                "DEBUG": "true",
                "DATABASE_URL": database.url,
                "REDIS_URL": private_redis.url,
                "SUMUP_TOKEN_KEYS": Fernet.generate_key().decode(),
                **(extra_env or {}),
            }
            processes = ProcfileProcesses(env, log_dir=tmp_path / "logs")
            processes.run_once("release")
            control = Celery(
                "stack-control",
                broker=private_redis.url,
                backend=private_redis.url,
                set_as_current=False,
            )
            try:
                yield PrivateStack(private_redis, database, env, processes, control)
            finally:
                processes.stop_all()
                control.close()
    finally:
        os.environ.update(saved)
