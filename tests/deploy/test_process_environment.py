"""The Procfile's web and worker read PORT, WEB_CONCURRENCY and WORKER_CONCURRENCY
themselves and check them as they start: a bad value ends the process with one line
naming the variable and status 2 before it listens or connects; a good one is used.
Each runs the Procfile's own line, through the shell, as a process manager does."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.procfile import PROJECT_DIR, read_procfile, shell_argv
else:
    from support.procfile import PROJECT_DIR, read_procfile, shell_argv

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0  # seconds for a good process to show it started
# Nothing listens here: a worker that got this far could not take anyone's task.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


def _environment(extra: dict[str, str]) -> dict[str, str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PORT", "WEB_CONCURRENCY", "WORKER_CONCURRENCY"}
    }
    environ["PATH"] = f"{VENV_BIN}{os.pathsep}{environ.get('PATH', '/usr/bin:/bin')}"
    environ["DEBUG"] = "true"
    return {**environ, **extra}


def _run_line(name: str, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shell_argv(read_procfile()[name]),
        cwd=PROJECT_DIR,
        env=_environment(extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as client:
        return client.connect_ex(("127.0.0.1", port)) == 0


def _run_until(name: str, extra: dict[str, str], log: Path, started: str, count: int) -> str:
    """Start the Procfile line, wait until `started` has appeared `count` times in its
    output, stop it (TERM to its group, KILL if it lingers) and return the output."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            shell_argv(read_procfile()[name]),
            cwd=PROJECT_DIR,
            env=_environment(extra),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while log.read_text(errors="replace").count(started) < count:
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return log.read_text(errors="replace")


BAD_WEB = [
    ({"PORT": "http"}, "error: PORT must be a whole number, got 'http'"),
    ({"PORT": "0"}, "error: PORT must be from 1 to 65535, got 0"),
    ({"PORT": "65536"}, "error: PORT must be from 1 to 65535, got 65536"),
    ({"WEB_CONCURRENCY": "two"}, "error: WEB_CONCURRENCY must be a whole number, got 'two'"),
    ({"WEB_CONCURRENCY": "0"}, "error: WEB_CONCURRENCY must be at least 1, got 0"),
    ({"LOG_LEVEL": "loud"}, "error: LOG_LEVEL must be one of DEBUG, INFO, WARNING"),
]


@pytest.mark.parametrize(("bad", "says"), BAD_WEB, ids=[str(bad) for bad, _ in BAD_WEB])
def test_a_bad_value_stops_the_web_with_one_line_before_it_listens(bad, says):
    port = _free_port()

    result = _run_line("web", {"PORT": str(port), **bad})

    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(says)
    assert result.stdout == ""
    assert not _listening(port)


def test_the_web_listens_on_port_with_web_concurrency_workers(tmp_path):
    port = _free_port()

    output = _run_until(
        "web", {"PORT": str(port), "WEB_CONCURRENCY": "3"}, tmp_path / "web.log", "Booting", 3
    )

    assert f"Listening at: http://0.0.0.0:{port}" in output
    assert output.count("Booting worker with pid") == 3
    assert "error:" not in output


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0", "error: WORKER_CONCURRENCY must be at least 1, got 0"),
        ("three", "error: WORKER_CONCURRENCY must be a whole number, got 'three'"),
        ("-2", "error: WORKER_CONCURRENCY must be at least 1, got -2"),
    ],
)
def test_a_bad_worker_concurrency_stops_the_worker_with_one_line(value, says):
    result = _run_line("worker", {"WORKER_CONCURRENCY": value})

    assert result.returncode == 2
    assert result.stderr.splitlines() == [says]
    assert result.stdout == ""


def test_the_worker_runs_worker_concurrency_processes(tmp_path):
    extra = {"WORKER_CONCURRENCY": "5", "CELERY_BROKER_URL": UNREACHABLE_BROKER}

    output = _run_until("worker", extra, tmp_path / "worker.log", "concurrency:", 1)

    assert ".> concurrency: 5 (prefork)" in output
