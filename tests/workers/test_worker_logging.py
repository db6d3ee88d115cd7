"""Worker and beat, started from the Procfile's own lines, write to LOG_FILE as the web
does: JSON lines (LOG_FORMAT=json), through the same redaction, the worker's pool
processes included. A task called with credentials in its arguments is the line that
would carry them: Celery logs a task's arguments with its receipt and its failure.
"""

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from events.logging import REDACTED

if TYPE_CHECKING:
    from tests.support.private_stack import private_stack
else:
    from support.private_stack import private_stack

pytestmark = pytest.mark.processes

SWEEP_INTERVAL = 10  # seconds, the setting's minimum: beat sends the sweep this soon
CLIENT_SECRET = "platform-client-secret-7731"  # configured: redacted wherever it appears
REFRESH_TOKEN = "rt-worker-log-5f0c2a9e"  # a secret by the field that carries it
LINES_TIMEOUT = 60.0  # seconds for every expected line to reach the file


def _records(log_file: Path) -> list[dict[str, Any]]:
    if not log_file.exists():
        return []
    return [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]


def _find(records: list[dict[str, Any]], logger: str, text: str) -> dict[str, Any] | None:
    return next((r for r in records if r["logger"] == logger and text in r["message"]), None)


def test_worker_and_beat_write_redacted_json_lines_to_the_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "var" / "events.log"
    log_file.parent.mkdir()
    extra_env = {
        "LOG_FILE": str(log_file),
        "LOG_FORMAT": "json",
        "SUMUP_CLIENT_SECRET": CLIENT_SECRET,
        "SUMUP_REFRESH_SWEEP_INTERVAL": str(SWEEP_INTERVAL),
    }
    ready = f"celery@{socket.gethostname()} ready."
    with private_stack(tmp_path, extra_env) as stack:
        stack.processes.start("worker")
        stack.processes.start("beat")
        stack.wait_for(
            lambda: _find(_records(log_file), "celery.apps.worker", ready), "ready", LINES_TIMEOUT
        )
        task_id = stack.control.send_task(
            "jobs.health.ping", args=[CLIENT_SECRET], kwargs={"refresh_token": REFRESH_TOKEN}
        ).id

        def expected() -> list[dict[str, Any]]:
            records = _records(log_file)
            found = [
                _find(records, "celery.beat", "Scheduler: Sending due task"),
                _find(records, "celery.worker.strategy", f"{task_id}] received"),
                _find(records, "celery.app.trace", f"{task_id}] raised unexpected"),
            ]
            return [r for r in found if r] if all(found) else []

        beat_sent, received, failed = stack.wait_for(expected, "expected lines", LINES_TIMEOUT)
        console = "".join(p.log_text() for p in stack.processes.running.values())

    written = log_file.read_text()
    for secret in (CLIENT_SECRET, REFRESH_TOKEN):
        assert secret not in written
        assert secret not in console
    assert beat_sent["level"] == "INFO" and "jobs." in beat_sent["message"]
    assert received["data"]["args"] == f"['{REDACTED}']"
    assert received["data"]["kwargs"] == f"{{'refresh_token': '{REDACTED}'}}"
    assert failed["level"] == "ERROR"  # from a pool process, not the worker's main one
    assert REDACTED in failed["data"]["kwargs"]
    # The same lines on the console: one logging path, two destinations.
    assert f'"message": "{ready}"' in console
