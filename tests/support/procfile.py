"""The Procfile's own commands, run as a process manager runs them.

Each line is read from the Procfile when the test runs (never copied into a test), and
started with `sh -c`, so `${PORT:-8000}` and the like expand from the environment the
test gives, in the project directory, as the leader of its own process group (a gunicorn
master and its workers, a celery worker and its pool, all signalled together). A simple
command is `exec`ed by that shell, so the process held is the program itself, and a
stop waits for the program rather than for a shell that TERM ends at once.

    processes = ProcfileProcesses(env, log_dir=tmp_path / "logs")
    processes.run_once("release")           # and fail with its output unless it exits 0
    processes.start("web"); processes.start("worker")
    processes.kill("worker")                # kill -9 the whole group, as a machine dying
    processes.start("worker")               # again, as the process manager would
    processes.stop_all()                    # TERM, then KILL what outlives the timeout

Output of each process goes to `<log_dir>/<name>.log`, appended to across restarts.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROCFILE = PROJECT_DIR / "Procfile"
STOP_TIMEOUT = 30.0  # seconds a warm shutdown may take before the group is killed
KILL_TIMEOUT = 10.0  # seconds for a killed process to be reaped
# A line with any of these is a shell program, not one command: it is not `exec`ed.
SHELL_OPERATORS = re.compile(r"&&|\|\||[;|&]")


class ProcfileError(RuntimeError):
    """A process exited when it should not have, or a one-off command failed."""


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """The Procfile's process types and their commands, in file order."""
    processes: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, separator, command = line.partition(":")
        if not separator or not command.strip():
            raise ProcfileError(f"{path}: not a 'name: command' line: {line!r}")
        processes[name.strip()] = command.strip()
    return processes


def shell_argv(command: str) -> list[str]:
    if SHELL_OPERATORS.search(command):
        return ["sh", "-c", command]
    return ["sh", "-c", f"exec {command}"]


class ProcfileProcess:
    """One running process type, leader of its own process group."""

    def __init__(self, name: str, command: str, env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.command = command
        self.log_path = log
        self.log_start = log.stat().st_size if log.exists() else 0  # earlier runs' output
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                shell_argv(command),
                cwd=PROJECT_DIR,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group: no shutdown, no acknowledgements, as in a crash."""
        self._signal(signal.SIGKILL)
        self.process.wait(KILL_TIMEOUT)

    def terminate(self) -> None:
        """Ask the whole group for a warm shutdown (TERM) without waiting for it."""
        self._signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """TERM (a warm shutdown), then KILL if still running after `timeout`; returns
        the exit status, or None if it had to be killed."""
        if not self.is_alive():
            return self.process.returncode
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            # Whatever the leader left behind in its group goes with it.
            self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def log_text(self) -> str:
        """What this run of the process has written (not the runs before a restart)."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 25) -> str:
        text = self.log_text()
        tail = "\n".join(text.splitlines()[-lines:])
        state = "running" if self.is_alive() else f"exited {self.process.returncode}"
        return f"--- {self.name} (pid {self.pid}, {state}): {self.command}\n{tail}"


class ProcfileProcesses:
    """The Procfile's processes for one run; `stop_all` ends every one still running."""

    def __init__(self, env: Mapping[str, str], *, log_dir: Path, path: Path = PROCFILE) -> None:
        self.commands = read_procfile(path)
        self.env = dict(env)
        self.log_dir = log_dir
        self.running: dict[str, ProcfileProcess] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def run_once(self, name: str, timeout: float = 120.0) -> str:
        """Run a one-off process type (`release`) to its end; its output, or raise."""
        log = self.log(name)
        with log.open("ab") as output:
            result = subprocess.run(
                shell_argv(self.commands[name]),
                cwd=PROJECT_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        text = log.read_text(errors="replace")
        if result.returncode != 0:
            raise ProcfileError(f"{name} exited {result.returncode}\n{text[-3000:]}")
        return text

    def start(self, name: str) -> ProcfileProcess:
        """Start a process type; a previous one of the same type must be gone."""
        previous = self.running.get(name)
        if previous is not None and previous.is_alive():
            raise ProcfileError(f"{name} is already running (pid {previous.pid})")
        process = ProcfileProcess(name, self.commands[name], self.env, self.log(name))
        self.running[name] = process
        return process

    def kill(self, name: str) -> None:
        self.running[name].kill()

    def check_alive(self) -> None:
        dead = [process for process in self.running.values() if not process.is_alive()]
        if dead:
            tails = "\n".join(process.log_tail() for process in dead)
            raise ProcfileError(f"{len(dead)} process(es) exited\n{tails}")

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> dict[str, int | None]:
        """Warm shutdown of everything at once, then KILL stragglers; exit statuses."""
        for process in self.running.values():
            if process.is_alive():
                process.terminate()  # all at once: their warm shutdowns overlap
        return {name: process.stop(timeout) for name, process in self.running.items()}

    def log_tails(self, lines: int = 25) -> str:
        return "\n".join(process.log_tail(lines) for process in self.running.values())
