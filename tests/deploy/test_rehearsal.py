"""A production rehearsal: the Procfile's own commands, as written, on a database and a
Redis of their own, with the fake SumUp and the fake email provider on loopback, and no
manual step between start and finish. Only the port and short intervals come from the
environment (and the connection settings any deployment gives).

In one run it proves that beat's schedule does the work, that a killed worker's campaign
and a pending backfill are recovered by beat, that health tells the truth about the
schedule, and, last because they are destructive, that `deploy` twice loses no row and
the runbook's rollback keeps what the runbook says it keeps.
"""

import ast
import json
import os
import re
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from celery import Celery
from cryptography.fernet import Fernet

from campaigns.sending import CLAIM_SECONDS
from fakes.brevo import FakeBrevo
from fakes.sumup import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeSumUp

if TYPE_CHECKING:
    from tests.support.polling import wait_for
    from tests.support.procfile import ProcfileProcesses
    from tests.support.rehearsal import (
        PrivateRedis,
        RehearsalDatabase,
        free_port,
        manage,
        output,
        shell,
    )
else:
    from support.polling import wait_for
    from support.procfile import ProcfileProcesses
    from support.rehearsal import PrivateRedis, RehearsalDatabase, free_port, manage, output, shell

# Worker and beat processes of their own: the session apart from the in-process worker.
pytestmark = pytest.mark.processes

T = TypeVar("T")

# The short intervals the rehearsal runs with (seconds); each at its setting's minimum
# where the setting has one.
SWEEP_INTERVAL = 10
REFRESH_WINDOW = 60
RECOVER_INTERVAL = 5  # campaigns' and backfills' recovery on beat
INTERVALS = {
    "SUMUP_REFRESH_SWEEP_INTERVAL": SWEEP_INTERVAL,
    "SUMUP_REFRESH_WINDOW": REFRESH_WINDOW,
    "CAMPAIGNS_RECOVER_INTERVAL": RECOVER_INTERVAL,
    "BACKFILLS_RECOVER_INTERVAL": RECOVER_INTERVAL,
    "CAMPAIGNS_REDISPATCH_AFTER": 10,
    "BACKFILL_STALE_SECONDS": 10,
}

DUE_NOW = 20  # connected artists whose token is inside the refresh window at start
DUE_LATER_BY = 60  # seconds after seeding that the last artist's token comes due
AUDIENCE = 30  # approved artists who must connect SumUp: the campaign's recipients
SUPPRESSED = 2  # approved artists who unsubscribed: listed, never emailed
CAMPAIGN_RATE = "5/s"  # slow enough that the kill lands with most sends still to go
KILL_AFTER = 8  # messages accepted by the provider before the worker is killed

START_TIMEOUT = 60.0  # seconds for web and worker to answer after starting
BACKFILL_ENTRY_TASK = "jobs.backfills.recover"
RECOVER_RESULT = re.compile(r"Task (jobs\.\w+\.recover)\[[^\]]+\] succeeded in [0-9.]+s: (.+)")


@dataclass
class Rehearsal:
    database: RehearsalDatabase
    sumup: FakeSumUp
    esp: FakeBrevo
    env: dict[str, str]
    processes: ProcfileProcesses
    control: Celery  # on the private Redis: pings the workers
    web_url: str

    def wait_for(self, condition: Callable[[], T], what: str, timeout: float) -> T:
        """Poll until `condition` is truthy; fail with every process's log tail."""
        explain, check = self.processes.log_tails, self.processes.check_alive
        return wait_for(condition, what, timeout, interval=0.5, explain=explain, check=check)

    def manage(self, *args: str) -> Any:
        return manage(self.env, *args)

    def shell(self, code: str) -> Any:
        return shell(self.env, code)


@pytest.fixture
def rehearsal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rehearsal]:
    """Everything the Procfile's processes need, started and, whatever happens, stopped."""
    with (
        PrivateRedis() as private_redis,
        RehearsalDatabase() as database,
        FakeSumUp() as sumup,
        FakeBrevo() as esp,
    ):
        port = free_port()
        env = {
            # The venv first, so `gunicorn`, `celery` and `python` are the project's own.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "PORT": str(port),
            "DEBUG": "true",
            "DATABASE_URL": database.url,
            "REDIS_URL": private_redis.url,
            "SUMUP_BASE_URL": sumup.base_url,
            "SUMUP_API_URL": sumup.api_url,
            "SUMUP_CLIENT_ID": DEFAULT_CLIENT_ID,
            "SUMUP_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "SUMUP_TOKEN_KEYS": Fernet.generate_key().decode(),
            **esp.environ(),
            **{name: str(value) for name, value in INTERVALS.items()},
        }
        processes = ProcfileProcesses(env, log_dir=tmp_path / "logs")
        # Celery takes CELERY_BROKER_URL from the environment over any configuration;
        # here that is the suite's own broker, not the rehearsal's.
        monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
        control = Celery("rehearsal-control", broker=private_redis.url, set_as_current=False)
        try:
            yield Rehearsal(
                database, sumup, esp, env, processes, control, f"http://127.0.0.1:{port}"
            )
        finally:
            esp.state.release.set()
            processes.stop_all()
            control.close()


# --- Seeding, through the project's own code -----------------------------------------

SEED = """
import json
from accounts.models import ArtistProfile, User
from campaigns.models import Suppression

data = json.loads(%r)
for artist in data["artists"]:
    user = User.objects.create_user(
        username=artist["name"], email=artist["name"] + "@example.com", password=None,
        user_type=User.UserType.ARTIST,
    )
    profile = ArtistProfile.objects.create(user=user, display_name=artist["name"], is_approved=True)
    if artist.get("token"):
        profile.update_sumup_connection(artist["token"])
    if artist.get("suppressed"):
        Suppression.objects.create(email=user.email, reason=Suppression.Reason.UNSUBSCRIBED)
print(json.dumps(ArtistProfile.objects.count()))
"""

START_CAMPAIGN = """
import json
from campaigns import services
from campaigns.models import Campaign

campaign = services.create(
    Campaign(name="Rehearsal: connect SumUp", rate_limit=%r), actor="rehearsal"
)
counts = services.start(campaign.pk, actor="rehearsal")
print(json.dumps({"id": campaign.pk, **counts}))
"""

# An artist whose token the platform last used ten days ago: the refresh policy renews
# their grant but leaves their access token to expire (accounts.sumup.refresh_policy).
GO_QUIET = """
import json
from datetime import timedelta
from django.utils import timezone
from accounts.models import ArtistProfile

profile = ArtistProfile.objects.get(user__username=%r)
used_at = timezone.now() - timedelta(days=10)
profile.sumup_token_used_at = used_at
profile.sumup_refresh_due_at = profile.sumup_refresh_token_issued_at + timedelta(days=150)
profile.save(update_fields=["sumup_token_used_at", "sumup_refresh_due_at"])
print(json.dumps(profile.pk))
"""

USE_TOKEN = """
import json
from accounts.sumup import tokens

token = tokens.access_token(%d)
print(json.dumps(token.expires_at.timestamp()))
"""

LEAVE_BACKFILL_PENDING = """
import json
from backfills import control

run = control.start("sumup_connection_status", enqueue=False, detail="left for beat")
print(json.dumps(run.pk))
"""

REMOVE_SCHEDULE_ENTRY = """
import json
from django_celery_beat.models import PeriodicTask

print(json.dumps(PeriodicTask.objects.filter(name=%r).delete()[0]))
"""


@dataclass(frozen=True)
class Grant:
    name: str
    grant_id: str


def connect_artist(sumup: FakeSumUp, name: str, expires_at: float) -> tuple[dict[str, Any], Grant]:
    """An artist with a live grant at the fake, whose token the site holds to expire at
    `expires_at` (Unix time)."""
    email = f"{name}@example.com"
    merchant = f"MR-{name.upper()}"
    sumup.add_user(email, [{"code": merchant, "name": f"{name} Ltd"}])
    token = sumup.mint_grant(email)
    grant = sumup.state.grant_for_token(token["refresh_token"])
    assert grant is not None
    stored = {key: value for key, value in token.items() if key != "expires_in"}
    stored.update(expires_at=expires_at, merchant_code=merchant)
    return {"name": name, "token": stored}, Grant(name, grant.id)


def successful_refreshes(sumup: FakeSumUp, grant: Grant) -> int:
    with sumup.state.lock:
        tokens = sumup.state.refresh_tokens.values()
        return sum(token.uses for token in tokens if token.grant_id == grant.grant_id)


def last_refreshed_at(sumup: FakeSumUp, grant: Grant) -> float | None:
    """When the fake issued the grant's newest access token, if a refresh issued one."""
    with sumup.state.lock:
        issued = sorted(
            token.issued_at
            for token in sumup.state.access_tokens.values()
            if token.grant_id == grant.grant_id
        )
    return issued[-1] if len(issued) > 1 else None


# --- Reading the processes --------------------------------------------------------------


def web_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def workers_answering(control: Celery) -> list[str]:
    replies = control.control.ping(timeout=1.0) or []
    return [name for reply in replies for name in reply]


def recover_results(log: str, task: str) -> list[Any]:
    """What each run of a recovery task returned, from the worker's INFO log."""
    return [
        ast.literal_eval(result) for name, result in RECOVER_RESULT.findall(log) if name == task
    ]


def counts_of(counts: dict[str, int], prefixes: tuple[str, ...]) -> dict[str, int]:
    return {table: n for table, n in counts.items() if table.startswith(prefixes)}


# --- The rehearsal --------------------------------------------------------------------


def test_the_procfile_as_written_does_its_scheduled_work_and_deploys_without_loss(rehearsal):
    r = rehearsal
    db = r.database
    r.processes.run_once("release")

    # Artists due for a refresh now, one due a minute later, and the campaign's audience.
    now = time.time()
    later_due = now + DUE_LATER_BY
    seeds, due_now = [], []
    for n in range(DUE_NOW):
        seed, grant = connect_artist(r.sumup, f"due{n}", now + REFRESH_WINDOW / 2)
        seeds.append(seed)
        due_now.append(grant)
    seed, due_later = connect_artist(r.sumup, "later", later_due + REFRESH_WINDOW)
    seeds.append(seed)
    seed, quiet = connect_artist(r.sumup, "quiet", now + REFRESH_WINDOW / 2)
    seeds.append(seed)
    seeds += [{"name": f"fan{n}"} for n in range(AUDIENCE)]
    seeds += [{"name": f"gone{n}", "suppressed": True} for n in range(SUPPRESSED)]
    assert r.shell(SEED % json.dumps({"artists": seeds})) == len(seeds)
    quiet_id = r.shell(GO_QUIET % "quiet")

    for name in ("web", "worker", "beat"):
        r.processes.start(name)
    r.wait_for(lambda: web_answers(r.web_url), "web answering /healthz", START_TIMEOUT)
    r.wait_for(lambda: workers_answering(r.control), "a worker", START_TIMEOUT)

    # (a) Beat's sweep refreshes every due token, once, with no one asking.
    r.wait_for(
        lambda: all(successful_refreshes(r.sumup, grant) for grant in due_now),
        f"beat's sweep refreshing all {DUE_NOW} due tokens",
        SWEEP_INTERVAL * 2 + 30,
    )
    assert [successful_refreshes(r.sumup, grant) for grant in due_now] == [1] * DUE_NOW
    assert (
        db.value(
            "SELECT count(*) FROM accounts_artistprofile WHERE sumup_last_refresh_at IS NOT NULL "
            "AND sumup_refresh_enqueued_at IS NULL AND sumup_connection_status = 'connected'"
        )
        == DUE_NOW
    )

    # (b) A campaign whose worker is killed, whole process group, while it sends.
    campaign = r.shell(START_CAMPAIGN % CAMPAIGN_RATE)
    assert (campaign["queued"], campaign["skipped"]) == (AUDIENCE, SUPPRESSED)
    r.wait_for(lambda: len(r.esp.state.accepted) >= KILL_AFTER, "the first sends", 60)
    r.processes.kill("worker")
    sent_before_kill = len(r.esp.state.accepted)
    assert sent_before_kill < AUDIENCE, "the kill landed with sends still to go"
    restarted = r.processes.start("worker")  # as the process manager would
    r.wait_for(lambda: workers_answering(r.control), "the restarted worker", START_TIMEOUT)

    # (c) A backfill left pending once no worker is starting: only beat can pick it up.
    # The restarted worker's own start-up recovery has run when its log shows it.
    r.wait_for(
        lambda: recover_results(restarted.log_text(), BACKFILL_ENTRY_TASK),
        "the restarted worker's start-up recovery",
        30,
    )
    run_id = r.shell(LEAVE_BACKFILL_PENDING)
    r.wait_for(
        lambda: (
            db.value("SELECT status FROM backfills_backfillrun WHERE id = %s", [run_id])
            == "succeeded"
        ),
        "beat's recovery to run the pending backfill to its end",
        RECOVER_INTERVAL * 2 + 30,
    )
    assert 1 in recover_results(restarted.log_text(), BACKFILL_ENTRY_TASK)
    assert db.rows(
        "SELECT action, detail FROM backfills_backfillevent WHERE run_id = %s ORDER BY id",
        [run_id],
    ) == [("record", "left for beat"), ("start", "picked up by a worker"), ("succeeded", "")]

    # (a) The token that came due later is refreshed then, not before, and once.
    r.wait_for(
        lambda: last_refreshed_at(r.sumup, due_later),
        "the later token's refresh",
        DUE_LATER_BY + SWEEP_INTERVAL * 2 + 30,
    )
    refreshed_at = last_refreshed_at(r.sumup, due_later)
    assert refreshed_at is not None
    assert later_due <= refreshed_at <= later_due + SWEEP_INTERVAL * 2 + 15
    assert successful_refreshes(r.sumup, due_later) == 1

    # (a) The quiet artist's token was left to expire; using it refreshes it on demand.
    assert successful_refreshes(r.sumup, quiet) == 0
    assert r.shell(USE_TOKEN % quiet_id) > time.time() + 60
    assert successful_refreshes(r.sumup, quiet) == 1

    # (b) Beat's recovery resumes the campaign; nobody gets a message twice. A send that
    # was inside the provider call at the kill waits for its claim to lapse (unknown).
    r.wait_for(
        lambda: (
            db.value("SELECT status FROM campaigns_campaign WHERE id = %s", [campaign["id"]])
            == "done"
        ),
        "the campaign to finish",
        CLAIM_SECONDS + RECOVER_INTERVAL * 2 + 60,
    )
    arrivals = Counter(arrival.to for arrival in r.esp.state.arrivals)
    assert max(arrivals.values()) == 1, f"sent twice: {arrivals.most_common(3)}"
    statuses = dict(
        db.rows(
            "SELECT status, count(*) FROM campaigns_recipient WHERE campaign_id = %s "
            "GROUP BY status",
            [campaign["id"]],
        )
    )
    assert statuses.get("sent", 0) + statuses.get("unknown", 0) == AUDIENCE, statuses
    assert statuses.get("skipped") == SUPPRESSED
    assert statuses.get("unknown", 0) <= 1, "only a send inside the provider call is unknown"
    sent = {
        email
        for (email,) in db.rows(
            "SELECT email FROM campaigns_recipient WHERE campaign_id = %s AND status = 'sent'",
            [campaign["id"]],
        )
    }
    assert sent <= {message.to for message in r.esp.state.accepted}
    assert not any(f"gone{n}@example.com" in arrivals for n in range(SUPPRESSED))
    # Each list in recovery's report names campaigns it set going again, but `finished`.
    resumed = [
        result
        for result in recover_results(restarted.log_text(), "jobs.campaigns.recover")
        if result["lost_claims"]
        or any(
            campaign["id"] in ids
            for name, ids in result.items()
            if isinstance(ids, list) and name != "finished"
        )
    ]
    assert resumed, f"beat's recovery never resumed the campaign\n{r.processes.log_tails()}"

    # (f) Health of web, worker and beat passes ...
    for args in (("healthcheck",), ("healthcheck", "--worker", "--any"), ("healthcheck", "--beat")):
        result = r.manage(*args)
        assert result.returncode == 0, f"{' '.join(args)}: {output(result)}"
    # ... and beat's fails, naming the entry, once an entry is gone from its schedule.
    entry = db.value(
        "SELECT name FROM django_celery_beat_periodictask WHERE task = %s", [BACKFILL_ENTRY_TASK]
    )
    assert entry, "beat's schedule in the database has the backfill recovery"
    assert r.shell(REMOVE_SCHEDULE_ENTRY % entry) == 1

    def beat_unhealthy() -> str:
        result = r.manage("healthcheck", "--beat")
        return "" if result.returncode == 0 else output(result)

    failure = r.wait_for(beat_unhealthy, "healthcheck --beat to fail", 60)
    assert entry in failure, failure
    # A restart of beat, as a deploy does, puts its schedule back whole.
    r.processes.running["beat"].stop()
    r.processes.start("beat")
    r.wait_for(
        lambda: db.value(
            "SELECT count(*) FROM django_celery_beat_periodictask WHERE name = %s", [entry]
        ),
        "beat to install its schedule again",
        START_TIMEOUT,
    )

    # (d) `deploy` twice on the populated database, processes running: no row lost.
    before = db.table_counts()
    migrations = db.rows("SELECT id, app, name, applied FROM django_migrations ORDER BY id")
    for attempt in (1, 2):
        result = r.manage("deploy", "--skip-backup")
        assert result.returncode == 0, f"deploy #{attempt}: {output(result)}"
    after = db.table_counts()
    lost = {
        table: (n, after.get(table, 0)) for table, n in before.items() if after.get(table, 0) < n
    }
    assert not lost, f"deploy lost rows (before, after): {lost}"
    assert db.rows("SELECT id, app, name, applied FROM django_migrations ORDER BY id") == (
        migrations
    ), "deploy unapplied or re-applied a migration"

    # (e) The runbook's rollback, with the processes of this release stopped: it keeps
    # every artist and user, the campaigns and their history, the suppression list and
    # the backfill records; then the release migrates forward again.
    exits = r.processes.stop_all()
    assert None not in exits.values(), f"not stopped by TERM: {exits}"
    kept = ("accounts_user", "accounts_artistprofile", "campaigns_", "backfills_")
    before = counts_of(db.table_counts(), kept)
    assert before["campaigns_suppression"] == SUPPRESSED
    for target in ("0003_add_sumup_oauth_fields", "0002_emailverificationtoken"):
        result = r.manage("migrate", "accounts", target, "--noinput")
        assert result.returncode == 0, f"rollback to {target}: {output(result)}"
    assert counts_of(db.table_counts(), kept) == before
    r.processes.run_once("release")
    assert counts_of(db.table_counts(), kept) == before
