"""The chaos suite's stage: the Procfile's processes as written (release, web, worker,
beat) on a PostgreSQL cluster and a Redis of the suite's own, with the fake SumUp in its
strict mode (every refresh rotates the refresh token; a spent one is refused) and the
fake email provider, carrying three jobs at once when a fault strikes:

- a campaign of `AUDIENCE` recipients, at `CAMPAIGN_RATE`;
- a sweep of `DUE` refreshes, at the SumUp budget `SUMUP_BUDGET`;
- a backfill of `LEGACY` rows (`sumup_connection_status`, started as an operator does).

Each test is one fault on a fresh database cloned from a migrated template, a fresh
Redis, fresh fakes and freshly started processes; what the fakes received and what the
database holds at the end are the figures it prints and asserts. Only the port, short
intervals and the workloads' pace come from the environment.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet

from fakes.brevo import FakeBrevo
from fakes.sumup import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeSumUp

if TYPE_CHECKING:
    from tests.support.chaos import (
        AnswerHolder,
        PrivatePostgres,
        http_status,
        live_refresh_tokens,
        provider_duplicates,
        reached_provider,
        refused_reuse_by_grant,
    )
    from tests.support.polling import poll
    from tests.support.procfile import ProcfileProcesses
    from tests.support.rehearsal import PrivateRedis, free_port, manage, output, shell
else:
    from support.chaos import (
        AnswerHolder,
        PrivatePostgres,
        http_status,
        live_refresh_tokens,
        provider_duplicates,
        reached_provider,
        refused_reuse_by_grant,
    )
    from support.polling import poll
    from support.procfile import ProcfileProcesses
    from support.rehearsal import PrivateRedis, free_port, manage, output, shell

AUDIENCE = 2_000  # campaign recipients
DUE = 2_000  # connected artists whose token comes due when the jobs start
LEGACY = 100_000  # artists that predate SumUp: the backfill's rows
CAMPAIGN_RATE = "40/s"
SUMUP_BUDGET = "40/s"
SWEEP_INTERVAL = 10  # seconds, the setting's minimum
REFRESHES_UNDER_WAY = 20  # refreshes done before the campaign and the backfill start
INTERVALS = {
    "SUMUP_REFRESH_SWEEP_INTERVAL": SWEEP_INTERVAL,
    "SUMUP_REFRESH_WINDOW": 60,
    "CAMPAIGNS_RECOVER_INTERVAL": 5,
    "BACKFILLS_RECOVER_INTERVAL": 5,
    "CAMPAIGNS_REDISPATCH_AFTER": 10,
    "BACKFILL_STALE_SECONDS": 10,
}
# The backfill's pace: small batches with a pause between them, so it is still running
# when the fault strikes (100,000 rows in about a minute).
BACKFILL_PACE = {
    "BACKFILL_BATCH_SIZE": 1_000,
    "BACKFILL_TARGET_BATCH_MS": 40,
    "BACKFILL_PAUSE_MS": 400,
}
RECOVERY_LIMIT = 120.0  # seconds from the fault's end to every job finished
RECOVERY_WAIT = RECOVERY_LIMIT + 20.0  # seconds the suite watches before calling it unrecovered
START_TIMEOUT = 60.0  # seconds for web, worker and beat to answer after starting
TEMPLATE = "chaos_template"

START_CAMPAIGN = """
import json
from campaigns import services
from campaigns.models import Campaign

campaign = services.create(Campaign(name="Chaos: connect SumUp", rate_limit=%r), actor="chaos")
counts = services.start(campaign.pk, actor="chaos")
print(json.dumps({"id": campaign.pk, **counts}))
"""


def base_env(home: Path) -> dict[str, str]:
    return {
        # The venv first, so `gunicorn`, `celery` and `python` are the project's own.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "DEBUG": "true",
    }


@dataclass
class Figures:
    """What one fault did to the work, as the fakes and the database tell it."""

    fault: str
    duplicates: int = 0
    lost: int = 0
    grants_lost: int = 0
    in_flight_lost: int = 0
    in_flight_told: int = 0
    recovered_in: float | None = None
    unfinished: list[str] = field(default_factory=list)
    readyz: tuple[int, int] = (0, 0)  # during, after
    healthcheck: tuple[bool, bool] = (True, False)  # passed during, passed after
    notes: str = ""
    lost_detail: str = ""  # what the lost work is, e.g. "unknown_unsent:4"

    def line(self) -> str:
        def colour(ok: bool) -> str:
            return "green" if ok else "red"

        recovered = "never" if self.recovered_in is None else f"{self.recovered_in:.0f}s"
        return (
            f"fault={self.fault} duplicates={self.duplicates} lost={self.lost} "
            f"grants_lost={self.grants_lost} "
            f"in_flight_lost={self.in_flight_lost} told={self.in_flight_told} "
            f"recovered_in={recovered} "
            f"readyz={colour(self.readyz[0] == 200)}->{colour(self.readyz[1] == 200)} "
            f"healthcheck={colour(self.healthcheck[0])}->{colour(self.healthcheck[1])}"
            + (f" unfinished={','.join(self.unfinished)}" if self.unfinished else "")
            + (f" lost_as={self.lost_detail}" if self.lost_detail else "")
            + (f" ({self.notes})" if self.notes else "")
        )


class Stage:
    """One fault's world: its database, Redis, fakes and the Procfile's processes."""

    def __init__(self, postgres: PrivatePostgres, tmp_path: Path) -> None:
        self.postgres = postgres
        self.database = f"chaos_{uuid.uuid4().hex[:10]}"
        self.redis = PrivateRedis(tmp_path / "redis")
        self.sumup = FakeSumUp(rotation="always", reject_reuse=True)
        self.esp = FakeBrevo()
        self.holder = AnswerHolder(self.sumup)
        self.keys = Fernet.generate_key().decode()
        self.port = free_port()
        self.web_url = f"http://127.0.0.1:{self.port}"
        self.tmp_path = tmp_path
        self.grants: dict[str, str] = {}  # address of each due artist -> its grant at SumUp
        self.campaign_id = 0
        self.started_at = 0.0
        self.restarts: list[str] = []  # processes started again after they exited
        self.env: dict[str, str] = {}
        self.processes: ProcfileProcesses | None = None

    # --- bring-up ----------------------------------------------------------------------

    def open(self) -> Stage:
        url = self.postgres.create_database(self.database, template=TEMPLATE)
        self.redis.start()
        self.sumup.start()
        self.esp.start()
        self.env = {
            **base_env(self.tmp_path),
            "PORT": str(self.port),
            "DATABASE_URL": url,
            "REDIS_URL": self.redis.url,
            "SUMUP_BASE_URL": self.sumup.base_url,
            "SUMUP_API_URL": self.sumup.api_url,
            "SUMUP_CLIENT_ID": DEFAULT_CLIENT_ID,
            "SUMUP_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "SUMUP_TOKEN_KEYS": self.keys,
            "SUMUP_API_RATE_LIMIT": SUMUP_BUDGET,
            **self.esp.environ(),
            **{name: str(value) for name, value in {**INTERVALS, **BACKFILL_PACE}.items()},
        }
        self.processes = ProcfileProcesses(self.env, log_dir=self.tmp_path / "logs")
        self.processes.run_once("release")
        self.seed()
        for name in ("web", "worker", "beat"):
            self.processes.start(name)
        self.wait_healthy(START_TIMEOUT)
        return self

    def close(self) -> None:
        self.esp.state.release.set()
        if self.processes is not None:
            self.processes.stop_all(timeout=10)
        self.esp.stop()
        self.sumup.stop()
        self.redis.stop()
        with self.postgres.connect() as server:
            server.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def sql(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self.postgres.connect(self.database) as connection:
            cursor = connection.execute(query.encode(), params)
            return cursor.fetchall() if cursor.description else []

    def value(self, query: str, params: Any = ()) -> Any:
        rows = self.sql(query, params)
        return rows[0][0] if rows else None

    def seed(self) -> None:
        """The three jobs' rows, in bulk SQL: the due artists' tokens are encrypted with
        the deployment's key and minted at the fake, the legacy artists have no status
        (the column is nullable again, as before accounts.0004)."""
        fernet = Fernet(self.keys.encode())
        expires = datetime.now(UTC) + timedelta(hours=1)
        connected = []
        for n in range(DUE):
            email = f"due{n}@example.com"
            self.sumup.add_user(email, [{"code": f"MRDUE{n}", "name": f"Due {n} Ltd"}])
            token = self.sumup.mint_grant(email)
            grant = self.sumup.state.grant_for_token(token["refresh_token"])
            assert grant is not None
            self.grants[email] = grant.id
            connected.append(
                (
                    f"due{n}",
                    fernet.encrypt(token["access_token"].encode()).decode(),
                    fernet.encrypt(token["refresh_token"].encode()).decode(),
                    expires,
                    token["scope"],
                    f"MRDUE{n}",
                )
            )
        with self.postgres.connect(self.database) as db:
            db.execute(
                "ALTER TABLE accounts_artistprofile "
                "ALTER COLUMN sumup_connection_status DROP NOT NULL"
            )
            for prefix, count in (("fan", AUDIENCE), ("due", DUE), ("legacy", LEGACY)):
                db.execute(
                    "INSERT INTO accounts_user (password, username, first_name, last_name, "
                    "email, is_superuser, is_active, is_staff, date_joined, user_type, phone, "
                    "email_verified) SELECT '!', %s || n, '', '', %s || n || '@example.com', "
                    "false, true, false, now(), 'artist', '', true "
                    "FROM generate_series(0, %s - 1) AS n",
                    (prefix, prefix, count),
                )
            db.execute(
                "INSERT INTO accounts_artistprofile (user_id, display_name, bio, business_name, "
                "is_approved, created_at, updated_at, sumup_connection_status) "
                "SELECT id, username, '', '', username NOT LIKE 'legacy%%', now(), now(), "
                "CASE WHEN username LIKE 'legacy%%' THEN NULL ELSE 'not_connected' END "
                "FROM accounts_user"
            )
            with db.cursor() as cursor:
                cursor.executemany(
                    "UPDATE accounts_artistprofile p SET sumup_access_token = %s, "
                    "sumup_refresh_token = %s, sumup_token_type = 'Bearer', "
                    "sumup_expires_at = %s, sumup_scope = %s, sumup_merchant_code = %s, "
                    "sumup_connected_at = now(), sumup_refresh_token_issued_at = now(), "
                    "sumup_connection_status = 'connected', sumup_token_version = 1 "
                    "FROM accounts_user u WHERE u.id = p.user_id AND u.username = %s",
                    [(*row[1:], row[0]) for row in connected],
                )
            db.execute("ANALYZE")

    # --- the jobs ------------------------------------------------------------------------

    def start_jobs(self) -> None:
        """Bring the due tokens into the window, and once beat's sweep has them under way
        start the campaign and the backfill: the sweep comes when beat's interval says,
        and a backfill on a quiet machine is over in seconds, so the three overlap only
        if the others wait for it."""
        self.started_at = time.time()
        self.sql(
            "UPDATE accounts_artistprofile SET sumup_expires_at = now() + interval '30 seconds', "
            "sumup_refresh_due_at = now(), sumup_token_used_at = now() "
            "WHERE sumup_merchant_code LIKE 'MRDUE%%'"
        )
        swept, waited = poll(lambda: self.refreshed() >= REFRESHES_UNDER_WAY, 60, 0.2)
        assert swept, f"beat's sweep did not start the refreshes in {waited:.0f} s"
        campaign = shell(self.env, START_CAMPAIGN % CAMPAIGN_RATE)
        assert campaign["queued"] == AUDIENCE, campaign
        self.campaign_id = campaign["id"]
        result = manage(self.env, "backfill", "run", "sumup_connection_status")
        assert result.returncode == 0, output(result)

    def backfill_progress(self) -> tuple[str, int]:
        row = self.sql(
            "SELECT status, rows_done FROM backfills_backfillrun ORDER BY id DESC LIMIT 1"
        )
        return (str(row[0][0]), int(row[0][1])) if row else ("none", 0)

    def refreshed(self) -> int:
        """Due artists whose refresh is over: a fresh token stored, or the grant found dead."""
        return int(
            self.value(
                "SELECT count(*) FROM accounts_artistprofile WHERE sumup_merchant_code LIKE "
                "'MRDUE%%' AND sumup_refresh_enqueued_at IS NULL AND (sumup_connection_status "
                "<> 'connected' OR sumup_expires_at > now() + interval '20 minutes')"
            )
            or 0
        )

    def unfinished(self) -> list[str]:
        """The jobs not yet finished; an empty list once all three are."""
        left = []
        status = self.value(
            "SELECT status FROM campaigns_campaign WHERE id = %s", [self.campaign_id]
        )
        if status != "done":
            left.append(f"campaign:{status}")
        if (done := self.refreshed()) < DUE:
            left.append(f"sweep:{done}/{DUE}")
        run_status, rows = self.backfill_progress()
        if run_status != "succeeded":
            left.append(f"backfill:{run_status}:{rows}")
        return left

    def supervise(self) -> None:
        """What a process manager does (a restart policy): start again what exited."""
        assert self.processes is not None
        for name, process in list(self.processes.running.items()):
            if not process.is_alive():
                self.processes.start(name)
                self.restarts.append(name)

    def wait_finished(self, fault_ended: float) -> tuple[float | None, list[str]]:
        """Seconds from the fault's end until every job finished (None: not within the
        watch), and the jobs left unfinished."""

        def finished() -> bool:
            self.supervise()
            return not self.unfinished()

        poll(finished, RECOVERY_WAIT - (time.time() - fault_ended), 1.0)
        remaining = self.unfinished()
        return (None if remaining else time.time() - fault_ended), remaining

    # --- health --------------------------------------------------------------------------

    def readyz(self) -> int:
        return http_status(f"{self.web_url}/readyz")

    def healthcheck_passes(self, *args: str) -> bool:
        return manage(self.env, "healthcheck", *args, timeout=60).returncode == 0

    def all_healthy(self) -> bool:
        return (
            self.readyz() == 200
            and self.healthcheck_passes()
            and self.healthcheck_passes("--worker")
            and self.healthcheck_passes("--beat")
        )

    def wait_healthy(self, timeout: float) -> bool:
        healthy, _ = poll(self.all_healthy, timeout, 1.0)
        return bool(healthy)

    def health_during(self, figures: Figures) -> None:
        """Read while the fault lasts: both must be red."""
        figures.readyz = (self.readyz(), figures.readyz[1])
        passed = self.healthcheck_passes() and self.healthcheck_passes("--worker")
        figures.healthcheck = (passed, figures.healthcheck[1])

    def health_after(self, figures: Figures) -> None:
        """Once the jobs finished, green within the recovery limit."""
        green = self.wait_healthy(RECOVERY_LIMIT / 2)
        figures.readyz = (figures.readyz[0], self.readyz())
        figures.healthcheck = (figures.healthcheck[0], green)

    # --- what the fakes and the database say ----------------------------------------------

    def due_profiles(self) -> dict[str, int]:
        """The artist profile of each due artist's grant at SumUp."""
        rows = self.sql(
            "SELECT u.email, p.id FROM accounts_artistprofile p "
            "JOIN accounts_user u ON u.id = p.user_id WHERE u.username LIKE 'due%%'"
        )
        return {self.grants[email]: profile_id for email, profile_id in rows}

    def count(self, figures: Figures, in_flight: set[str]) -> Figures:
        """Duplicates and lost recipients at the provider, grants lost at SumUp.

        `in_flight`: grants whose answer never reached the refresh journal, sent around a
        kill (the documented window): lost there, each must be found dead and its artist
        told."""
        figures.duplicates = sum(provider_duplicates(self.esp).values())
        reached = reached_provider(self.esp)
        rows = self.sql(
            "SELECT r.status, u.email FROM campaigns_recipient r "
            "JOIN accounts_artistprofile p ON p.id = r.artist_id "
            "JOIN accounts_user u ON u.id = p.user_id WHERE r.campaign_id = %s",
            [self.campaign_id],
        )
        backfill_left = int(
            self.value(
                "SELECT count(*) FROM accounts_artistprofile WHERE sumup_connection_status IS NULL"
            )
        )
        lost_recipients = Counter(
            "unknown_unsent" if status == "unknown" else status
            for status, email in rows
            if status in ("queued", "sending") or (status == "unknown" and email not in reached)
        )
        if backfill_left:
            lost_recipients["backfill_rows"] = backfill_left
        figures.lost = sum(lost_recipients.values()) + (AUDIENCE - len(rows))
        figures.lost_detail = ",".join(f"{name}:{n}" for name, n in lost_recipients.items())
        fernet = Fernet(self.keys.encode())
        live = live_refresh_tokens(self.sumup)
        refused = refused_reuse_by_grant(self.sumup)
        lost: set[str] = set(refused)
        dead: set[str] = set()
        for email, status, stored in self.sql(
            "SELECT u.email, p.sumup_connection_status, p.sumup_refresh_token "
            "FROM accounts_artistprofile p JOIN accounts_user u ON u.id = p.user_id "
            "WHERE u.username LIKE 'due%%'"
        ):
            grant = self.grants[email]
            if status == "expired":
                dead.add(grant)
            if stored is None or fernet.decrypt(stored.encode()).decode() not in live:
                lost.add(grant)
        figures.grants_lost = len(lost - in_flight)
        figures.in_flight_lost = len(lost & in_flight)
        told = {self.grants[email] for email in reached if email in self.grants}
        figures.in_flight_told = len(lost & in_flight & dead & told)
        return figures

    def log_tails(self) -> str:
        return self.processes.log_tails(40) if self.processes else ""
