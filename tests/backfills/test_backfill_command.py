"""`manage.py backfill status --wait` in a terminal: a run under way is followed from
where it is, and each line is printed once."""

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from backfills.models import BackfillRun, RunStatus

NAME = "sumup_connection_status"
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\r")
# The bar's own percentage (rich's), a whole number; the status lines say "40.0%".
_BAR_PERCENT = re.compile(r"(?<![\d.])(\d+)%")


def database_url() -> str:
    """The test database (pytest-django has renamed it by now), for a subprocess."""
    db = settings.DATABASES["default"]
    login = db["USER"] + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{login}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Terminal:
    """A command run in a pseudo-terminal, as staff run it: rich draws its bar there."""

    def __init__(self, argv: list[str]) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DEBUG": "true",
            "TERM": "xterm-256color",
            "COLUMNS": "200",
        }
        self.master, replica = pty.openpty()
        self.process = subprocess.Popen(
            argv, stdin=replica, stdout=replica, stderr=replica, env=env, close_fds=True
        )
        os.close(replica)
        self.raw = b""

    @property
    def text(self) -> str:
        return _ESCAPES.sub("", self.raw.decode(errors="replace"))

    def read_until(self, seen: Callable[[str], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not seen(self.text):
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the command exited and closed its end
                    break
                self.raw += chunk
        return seen(self.text)

    def close(self) -> int:
        self.read_until(lambda _: self.process.poll() is not None, timeout=30)
        os.close(self.master)
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait(timeout=10)


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def run(*args: str) -> Terminal:
        opened.append(Terminal([sys.executable, str(settings.WEBAPP_DIR / "manage.py"), *args]))
        return opened[-1]

    yield run
    for each in opened:
        if each.process.poll() is None:
            each.process.kill()
            each.process.wait(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_it_follows_a_run_under_way_from_its_done_count_and_prints_each_line_once(terminal):
    now = timezone.now()
    run = BackfillRun.objects.create(
        backfill=NAME,
        status=RunStatus.RUNNING,
        generation=1,
        rows_total=100_000,
        rows_done=40_000,
        started_at=now,
        heartbeat_at=now,
    )
    run.events.create(action="start")
    watching = terminal("backfill", "status", NAME, "--wait")

    drawn = watching.read_until(lambda text: bool(_BAR_PERCENT.search(text)), timeout=60)
    assert drawn, watching.text[-2000:]
    BackfillRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED, rows_done=100_000, finished_at=now + timedelta(seconds=8)
    )
    status = watching.close()

    out = watching.text
    assert status == 0, out[-2000:]
    drawn_at = [int(percent) for percent in _BAR_PERCENT.findall(out)]
    assert drawn_at[0] == 40 and drawn_at[-1] == 100, "the bar starts where the run is"
    assert out.count(f"run #{run.pk} {NAME}: Running, 40,000 of 100,000 rows (40.0%)") == 1
    assert out.count(f"run #{run.pk} {NAME}: Succeeded, 100,000 rows done, none left") == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "fails"), [("succeeded", False), ("failed", True)])
def test_it_prints_a_run_that_is_over_once_when_asked_to_wait(status, fails, capsys):
    run = BackfillRun.objects.create(
        backfill=NAME, status=status, rows_total=10, rows_done=10 if not fails else 4
    )

    if fails:
        with pytest.raises(CommandError, match=f"run #{run.pk} ended failed"):
            call_command("backfill", "status", NAME, "--wait")
    else:
        call_command("backfill", "status", NAME, "--wait")

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"run #{run.pk} {NAME}: {status.capitalize()}")
