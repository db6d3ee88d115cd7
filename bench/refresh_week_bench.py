"""Simulate a week of the SumUp refresh policy at a million connected artists.

Run:  .venv/bin/python bench/refresh_week_bench.py [--quick] [--artists N] [--days D]
        [--active-share F] [--return-share F] [--quiet-share F] [--use-every-hours H]
(default: 1,000,000 artists, 7 days, 5 % active; --quick: 100,000 artists, one day.)

What it proves: under the default SumUp budget the refresh policy
(accounts.sumup.refresh_policy) keeps every grant alive and every active artist's access
token valid, week-long, with the sweep never more than one sweep interval behind.

The database is real: a throwaway PostgreSQL database `bench_refresh_week`, brought up
with the real `migrate`, holds the artists, loaded with COPY in the shape the policy
leaves them (rows from bench.token_refresh_bench.profile_row, times overridden):

- active artists (`--active-share`): the platform used their token within the last
  `SUMUP_TOKEN_ACTIVE_FOR`; access tokens expire spread over the hour past the refresh
  window (a token expiring inside it would have been refreshed already);
  most are users who use their token every `--use-every-hours`, the rest have gone quiet
  (last use spread over the active period), as many as `--quiet-share` leaves there;
- every other artist is inactive: last use older than the active period (30 % never),
  access token expired unless the grant was renewed within the hour;
- every refresh token was issued at a time spread evenly over the renewal period
  (`SUMUP_REFRESH_TOKEN_RENEW_AFTER`), so renewals spread evenly over the coming one;
- each row's next refresh is `refresh_policy.next_due` of those times.

The clock is virtual: every project function used here takes the time it runs at
(`refresh.due_profiles(t)`, `connection.token_changes(current, answer, t)`,
`tokens.record_use(profile, t)`, `headroom.measure(t)`), so nothing travels in time.
The week runs in steps of the sweep interval (`SUMUP_REFRESH_SWEEP_INTERVAL`); at each
step t, in one transaction:

1. uses: the users whose turn it is use their token. Each use is recorded with
   `tokens.record_uses`, the statement `tokens.record_use` runs, over many ids at once,
   except the first `REAL_USES_PER_STEP` of each step, which go through
   `tokens.record_use` itself; every use must be written (the last one is a
   use interval old). Users go quiet (`--quiet-share` a day: they stop using their
   token) and inactive artists come back (`--return-share` a day): a returning artist's
   use goes through `tokens.record_use`, and a token that is no longer good for use
   (`tokens.USE_MARGIN`) is refreshed on demand, one call of the budget's interactive
   room, as `tokens.access_token` does;
2. the sweep: due rows are read with `refresh.due_profiles(t)` in the sweep's claim order
   (`order_by("sumup_refresh_due_at", "pk")`), at most one step of the paced share
   (step / `refresh.paced_interval()`) less that step's on-demand calls. Each gets
   SumUp's answer as fakes.sumup gives it (rotation "sumup": a new access token for
   `expires_in`; a new refresh token only inside the held one's last `rotation_window` of
   life, else the same one back), stored as `refresh._store` stores it: the column
   values of `token_changes(current, answer, t)`, compare-and-swap on the token version,
   one UPDATE ... FROM unnest(...) per set of columns;
3. figures: due rows before serving (needed), served, left over (backlog); active
   artists whose access token expired (`expires_at <= t`, the rule's own
   `refresh_policy.inactive_at` deciding who is active; every token that expired within
   the step is checked, every token at the end of each day); the oldest refresh token.

Nothing decrypts a token here: loaded tokens are encrypted (profile_row), tokens the week
writes are stored as plain placeholders, and SumUp's "same refresh token back" hands back
the stored value as read. Two things exist for the simulation alone: a partial index on
the refresh token's issue time, so the oldest token is read each step without scanning a
million rows (it costs the UPDATEs one more index entry each), and
`synchronous_commit = off` for the database (no fsync per step; nothing here tests a
crash).

At the end, PASS/FAIL with each figure: no refresh token older than the renewal threshold
plus one step; no active artist ever without a valid access token, and none refreshed
with a step or less of validity left (a step's refreshes are written at its start, but
the sweep's paced slots spread them over the step); the backlog at every step within one
step's capacity and not growing (the last day's largest at most the first day's); the
calls per hour against what the paced share allows (the sweep never takes more: the
backlog says whether it was enough). Beside them: the share of the budget the policy
uses, what the rule before (every connected artist's access token refreshed hourly)
would need, and headroom.measure's hourly "needed" against the calls each hour made. A
table per simulated day, and bench/results/refresh_week.json. Exit status 1 if a check
fails.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import functools
import math
import os
import random
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import redis
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
# Run as a script, only bench/ is on sys.path; the shared helpers live in bench.common.
sys.path.insert(0, str(PROJECT_DIR))

from bench.common import (  # noqa: E402
    DEFAULT_SERVER,
    BenchError,
    PrivateRedis,
    admin_execute,
    check,
    configure_refresh_process,
    create_database,
    drop_database,
    log,
    on_terminate,
    write_json,
)
from bench.token_refresh_bench import copy_rows, migrate, profile_row, user_row  # noqa: E402
from fakes.sumup.models import Config as FakeSumUpConfig  # noqa: E402

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from accounts.models import ArtistProfile

RESULTS_FILE = BENCH_DIR / "results" / "refresh_week.json"
DB_NAME = "bench_refresh_week"
CLIENT_ID = "jersey-events-local"

FULL_ARTISTS, FULL_DAYS = 1_000_000, 7
QUICK_ARTISTS, QUICK_DAYS = 100_000, 1
DEFAULT_ACTIVE_SHARE = 0.05
DEFAULT_RETURN_SHARE = 0.001  # of the artists not using their token, a day
# Of the users, a day: about as many as come back (0.1 % of ~950,000 is ~950 a day; 2 %
# of ~47,000 users is ~940), so the active population neither grows nor shrinks.
DEFAULT_QUIET_SHARE = 0.02
DEFAULT_USE_EVERY_HOURS = 4
NEVER_USED_SHARE = 0.3  # of the inactive artists: connected, never sold since
LONGEST_UNUSED = timedelta(days=180)  # the oldest last use of an inactive artist
REAL_USES_PER_STEP = 2  # scheduled uses recorded by tokens.record_use itself, each step
SEED = 18
COPY_CHUNK = 20_000  # rows built and copied per transaction
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SCOPE = "payments transactions.history user.app-settings user.profile_readonly"
# SumUp as fakes.sumup plays it: an access token's life, a refresh token's, and the last
# part of that in which using it brings a new one.
SUMUP = FakeSumUpConfig()
ISSUED_INDEX = "bench_week_issued_idx"


# --- settings and database ----------------------------------------------------------------------


def prepare_database(server: str) -> None:
    create_database(server, DB_NAME)
    # One commit per simulated step; waiting on its fsync measures the disk, not the policy.
    admin_execute(
        server,
        sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(DB_NAME)),
    )
    migrate()


def drop_bench_database(server: str) -> None:
    from django.db import connections

    connections.close_all()
    drop_database(server, DB_NAME)


# --- the world: who uses their token, and when ---------------------------------------------------


@dataclass(frozen=True)
class Shape:
    artists: int
    days: int
    active_share: float
    return_share: float
    quiet_share: float
    use_every_steps: int
    step: timedelta

    @property
    def steps(self) -> int:
        return int(self.days * DAY / self.step)

    @property
    def steps_a_day(self) -> int:
        return int(DAY / self.step)

    def user_share(self, active_for: timedelta) -> float:
        """Users among all artists: the active share less those gone quiet within the
        active period, who the rule still counts as active (users x quiet share x days)."""
        return self.active_share / (1 + self.quiet_share * (active_for / DAY))


class Users:
    """The artists who use their token (the world, not the system under test): each once
    every `every` steps, at the step of their own phase."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.by_phase: list[set[int]] = [set() for _ in range(every)]
        self.phase: dict[int, int] = {}
        self.members: list[int] = []
        self.position: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, pk: int) -> bool:
        return pk in self.phase

    def add(self, pk: int, phase: int) -> None:
        self.phase[pk] = phase % self.every
        self.by_phase[self.phase[pk]].add(pk)
        self.position[pk] = len(self.members)
        self.members.append(pk)

    def remove(self, pk: int) -> None:
        self.by_phase[self.phase.pop(pk)].discard(pk)
        at, last = self.position.pop(pk), self.members.pop()
        if last != pk:
            self.members[at], self.position[last] = last, at

    def using_at(self, step: int) -> list[int]:
        return sorted(self.by_phase[step % self.every])


class Arrivals:
    """A whole number of events per step from a rate that is a fraction of one: the
    fractions carry over, so the week's total is the rate's without randomness."""

    def __init__(self) -> None:
        self.carried = 0.0

    def take(self, expected: float) -> int:
        self.carried += expected
        whole = int(self.carried)
        self.carried -= whole
        return whole


# --- loading -----------------------------------------------------------------------------------


@dataclass
class Loaded:
    users: Users
    roles: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[str, float] = field(default_factory=dict)


def artist_times(
    n: int, shape: Shape, t0: datetime, rng: random.Random, users: Users
) -> tuple[str, dict[str, Any]]:
    """Artist `n`'s role and the times the policy would have left on its row at `t0`."""
    from accounts.sumup import refresh_policy

    active_for, renew_after = refresh_policy.active_for(), refresh_policy.renew_after()
    window, expires_in = refresh_policy.refresh_window(), timedelta(seconds=SUMUP.expires_in)
    issued_at = t0 - renew_after * rng.random()
    u = rng.random()
    used_at: datetime | None = None
    if u < shape.user_share(active_for):
        role, phase = "user", rng.randrange(shape.use_every_steps)
        users.add(n, phase)
        used_at = t0 + (phase - shape.use_every_steps) * shape.step  # its turn before t0
    elif u < shape.active_share:
        role, used_at = "quiet, still active", t0 - (active_for - shape.step) * rng.random()
    else:
        role = "inactive"
        if rng.random() >= NEVER_USED_SHARE:
            used_at = t0 - active_for - HOUR - (LONGEST_UNUSED - active_for) * rng.random()
    if role == "inactive":  # its last refresh: on demand at its last use, or the renewal
        expires_at = max(issued_at, used_at or issued_at) + expires_in
    else:
        expires_at = t0 + window + (expires_in - window) * rng.random()
    due_at = refresh_policy.next_due(
        expires_at=expires_at, refresh_token_issued_at=issued_at, used_at=used_at, now=t0
    )
    return role, {
        "sumup_expires_at": expires_at,
        "sumup_refresh_token_issued_at": issued_at,
        "sumup_token_used_at": used_at,
        "sumup_refresh_due_at": due_at,
    }


def load_artists(conninfo: str, shape: Shape, t0: datetime) -> Loaded:
    """COPY the artists, VACUUM (ANALYZE) them, and index the refresh token's issue time."""
    rng = random.Random(SEED)
    loaded = Loaded(Users(shape.use_every_steps))
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        for start in range(1, shape.artists + 1, COPY_CHUNK):
            users, profiles = [], []
            for n in range(start, min(start + COPY_CHUNK, shape.artists + 1)):
                grant = {
                    "access_token": f"bench-access-{n}",
                    "refresh_token": f"bench-refresh-{n}",
                    "scope": SCOPE,
                }
                role, times = artist_times(n, shape, t0, rng, loaded.users)
                loaded.roles[role] += 1
                users.append(user_row(n, t0))
                profiles.append({**profile_row(n, grant, t0), **times})
            with conn.cursor() as cur:
                copy_rows(cur, "accounts_user", users)
                copy_rows(cur, "accounts_artistprofile", profiles)
            conn.commit()
    loaded.seconds["build_and_copy"] = time.perf_counter() - started
    started = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            f"CREATE INDEX {ISSUED_INDEX} ON accounts_artistprofile"
            " (sumup_refresh_token_issued_at) WHERE sumup_connection_status IN"
            " ('connected', 'error') AND sumup_refresh_token IS NOT NULL"
        )
        conn.execute("VACUUM (ANALYZE) accounts_user, accounts_artistprofile")
    loaded.seconds["index_and_vacuum"] = time.perf_counter() - started
    return loaded


# --- a refresh: SumUp's answer, stored as the refresh stores it -----------------------------------


@dataclass(slots=True)
class Held:
    """What a refresh reads of the row it claimed (refresh.CLAIMED_FIELDS: all that
    `token_changes` reads), with the expiry and next refresh the figures need. The
    refresh token is the stored text, never decrypted."""

    pk: int
    sumup_token_version: int
    sumup_connected_at: datetime | None
    sumup_merchant_code: str | None
    sumup_connection_status: str
    sumup_refresh_token_issued_at: datetime | None
    sumup_token_used_at: datetime | None
    sumup_expires_at: datetime | None
    sumup_refresh_due_at: datetime | None
    sumup_refresh_token: str


# Held's fields but the last, the refresh token, which is read as stored text.
HELD_COLUMNS = tuple(column.name for column in fields(Held))[:-1]


def held_rows(rows: QuerySet[ArtistProfile], limit: int | None = None) -> list[Held]:
    """The first `limit` rows of `rows` (all by default) as `Held`, in its order."""
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from accounts.sumup import refresh

    unread = set(refresh.CLAIMED_FIELDS) - {*HELD_COLUMNS, "sumup_refresh_token"}
    check(not unread, f"Held lacks what a refresh reads of its row: {sorted(unread)}")

    # The cast reads the column as text, past the field that would decrypt it.
    stored = Cast("sumup_refresh_token", TextField())
    values = rows.annotate(held_token=stored).values_list(*HELD_COLUMNS, "held_token")
    return [Held(*row) for row in (values if limit is None else values[:limit])]


def sumup_answer(held: Held, t: datetime) -> dict[str, Any]:
    """SumUp's answer to a refresh with `held`'s refresh token at `t` (fakes.sumup,
    rotation "sumup"): a new access token; a new refresh token only when the one used is
    in the last `rotation_window` of its life, else the same one back."""
    issued = held.sumup_refresh_token_issued_at
    check(issued is not None, f"artist {held.pk}: a refresh token of unknown age")
    assert issued is not None
    life_left = issued + timedelta(seconds=SUMUP.refresh_lifetime) - t
    reissued = life_left <= timedelta(seconds=SUMUP.rotation_window)
    stamp = f"{held.pk}-{int(t.timestamp())}"
    return {
        "access_token": f"week-access-{stamp}",
        "token_type": "Bearer",
        "expires_in": SUMUP.expires_in,
        "refresh_token": f"week-refresh-{stamp}" if reissued else held.sumup_refresh_token,
        "scope": SCOPE,
    }


def refreshed(held: Held, t: datetime) -> dict[str, Any]:
    """The columns a refresh answered at `t` writes (refresh._store): `token_changes` of
    SumUp's answer, the refresh's time, the claim and queue mark let go."""
    from typing import cast

    from accounts.sumup.connection import SumUpConnection, token_changes

    # `token_changes` reads the attributes `Held` has, and nothing else of the row.
    changes = token_changes(cast(SumUpConnection, held), sumup_answer(held, t), t)
    changes.update(
        sumup_last_refresh_at=t,
        sumup_refresh_claim="",
        sumup_refresh_claimed_until=None,
        sumup_refresh_enqueued_at=None,
    )
    return changes


@functools.cache
def update_statement(columns: tuple[str, ...]) -> str:
    """UPDATE of `columns` from arrays, one element per row, with the refresh's
    compare-and-swap: a row is written only if its token version is the one read."""
    from django.db import connection, models

    from accounts.models import ArtistProfile

    quote = connection.ops.quote_name
    typed: list[tuple[str, str]] = []  # (quoted column, its type)
    for name in columns:
        model_field = ArtistProfile._meta.get_field(name)
        assert isinstance(model_field, models.Field) and model_field.column is not None
        typed.append((quote(model_field.column), str(model_field.db_type(connection))))
    sets = ", ".join(f"{column} = v.{column}" for column, _ in typed)
    arrays = ", ".join(["%s::integer[]", "%s::integer[]", *(f"%s::{t}[]" for _, t in typed)])
    names = ", ".join(["row_id", "row_version", *(column for column, _ in typed)])
    table = quote(ArtistProfile._meta.db_table)
    return (
        f"UPDATE {table} AS p SET {sets} FROM unnest({arrays}) AS v({names})"
        " WHERE p.id = v.row_id AND p.sumup_token_version = v.row_version"
    )


def plain(value: Any) -> Any:
    """A value as the column takes it (a status choice is its text)."""
    return value.value if isinstance(value, enum.Enum) else value


def store(writes: Sequence[tuple[Held, dict[str, Any]]]) -> int:
    """Write each row's columns, one UPDATE per set of columns; the rows written."""
    from django.db import connection

    groups: dict[tuple[str, ...], list[tuple[Held, dict[str, Any]]]] = defaultdict(list)
    for held, changes in writes:
        groups[tuple(changes)].append((held, changes))
    written = 0
    with connection.cursor() as cursor:
        for columns, rows in groups.items():
            params: list[list[Any]] = [
                [held.pk for held, _ in rows],
                [held.sumup_token_version for held, _ in rows],
            ]
            params += [[plain(changes[c]) for _, changes in rows] for c in columns]
            cursor.execute(update_statement(columns), params)
            written += cursor.rowcount
    return written


# --- uses ---------------------------------------------------------------------------------------


def use_once(pk: int, t: datetime, *, last_use_hours_ago: bool) -> bool:
    """One use through `tokens.record_use` itself, then, as `tokens.access_token` does, a
    refresh on demand if the token is not good for `tokens.USE_MARGIN`. True: refreshed.
    `last_use_hours_ago`: the use must be written (none within the hour)."""
    from accounts.models import ArtistProfile, ConnectionStatus
    from accounts.sumup import tokens

    profile = ArtistProfile.objects.only(
        "sumup_token_used_at", "sumup_expires_at", "sumup_connection_status"
    ).get(pk=pk)
    recorded = tokens.record_use(profile, t)
    check(recorded or not last_use_hours_ago, f"artist {pk}: a use hours apart not recorded")
    expires_at = profile.sumup_expires_at
    if (
        profile.sumup_connection_status == ConnectionStatus.CONNECTED
        and expires_at is not None
        and expires_at > t + tokens.USE_MARGIN
    ):
        return False
    held = held_rows(ArtistProfile.objects.filter(pk=pk))
    check(store([(held[0], refreshed(held[0], t))]) == 1, f"artist {pk}: refresh not stored")
    return True


# --- the week ------------------------------------------------------------------------------------


@dataclass
class DayFigures:
    day: int
    needed_max: int = 0  # due rows at a step, before serving
    served: int = 0
    on_demand: int = 0
    backlog_max: int = 0
    renewed: int = 0  # refresh tokens SumUp reissued
    uses: int = 0
    came_back: int = 0
    went_quiet: int = 0
    expired_active: int = 0  # active artists found with an expired access token
    oldest_token_days: float = 0.0
    calls_per_hour_max: int = 0
    calls_per_hour_mean: float = 0.0
    active_at_end: int = 0  # counted active by the rule at the day's last step
    users_at_end: int = 0
    wall_seconds: float = 0.0


@dataclass
class HourFigures:
    hour: int
    calls: int = 0  # sweep refreshes and on-demand refreshes in the hour
    headroom_needed: int = 0  # headroom.measure at the hour's start
    headroom_available: int = 0


@dataclass
class Week:
    shape: Shape
    t0: datetime
    users: Users
    capacity: int  # refreshes one step of the paced share holds
    rng: random.Random = field(default_factory=lambda: random.Random(SEED + 1))
    returns: Arrivals = field(default_factory=Arrivals)
    quiets: Arrivals = field(default_factory=Arrivals)
    days: list[DayFigures] = field(default_factory=list)
    hours: list[HourFigures] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)
    expired_active: set[int] = field(default_factory=set)
    oldest_token_age: timedelta = timedelta(0)
    latest_service: timedelta = timedelta(0)  # the longest a served row was past due
    least_margin: timedelta | None = None  # the least validity left at an active refresh
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def day(self) -> DayFigures:
        return self.days[-1]

    def hour(self) -> HourFigures:
        return self.hours[-1]


@contextlib.contextmanager
def timing(week: Week, name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    week.seconds[name] += time.perf_counter() - started


def find_expired_active(t: datetime, since: datetime | None = None) -> list[int]:
    """Working connections the rule counts as active at `t` whose access token has
    expired (since `since`: read from the expiry index, a step's worth)."""
    from accounts.models import ArtistProfile
    from accounts.sumup import refresh, refresh_policy

    rows = ArtistProfile.objects.filter(
        sumup_connection_status__in=refresh.REFRESHABLE, sumup_expires_at__lte=t
    ).exclude(refresh_policy.inactive_at(t))
    if since is not None:
        rows = rows.filter(sumup_expires_at__gt=since)
    return list(rows.values_list("pk", flat=True))


def oldest_refresh_token(t: datetime) -> timedelta:
    from django.db.models import Min

    from accounts.models import ArtistProfile
    from accounts.sumup import refresh

    oldest = ArtistProfile.objects.filter(
        sumup_connection_status__in=refresh.REFRESHABLE, sumup_refresh_token__isnull=False
    ).aggregate(oldest=Min("sumup_refresh_token_issued_at"))["oldest"]
    return t - oldest if oldest is not None else timedelta(0)


def active_count(t: datetime) -> int:
    from accounts.models import ArtistProfile
    from accounts.sumup import refresh, refresh_policy

    return (
        ArtistProfile.objects.filter(sumup_connection_status__in=refresh.REFRESHABLE)
        .exclude(refresh_policy.inactive_at(t))
        .count()
    )


def use_tokens(week: Week, step: int, t: datetime) -> tuple[int, int]:
    """The users whose turn it is use their token, the first few through record_use.
    Returns (uses, refreshes on demand: none while the sweep keeps users fresh)."""
    from accounts.sumup import tokens

    using = week.users.using_at(step)
    real = using[:REAL_USES_PER_STEP]
    on_demand = sum(use_once(pk, t, last_use_hours_ago=True) for pk in real)
    written = tokens.record_uses(using[len(real) :], t) if len(using) > len(real) else 0
    check(
        written == len(using) - len(real),
        f"step {step}: {written} of {len(using) - len(real)} uses recorded",
    )
    return len(using), on_demand


def comings_and_goings(week: Week, step: int, t: datetime) -> int:
    """Users who go quiet, and artists who come back (their use through record_use, and a
    refresh on demand when their token has run out). Returns the on-demand refreshes."""
    shape, users = week.shape, week.users
    a_day = week.shape.step / DAY
    for _ in range(week.quiets.take(shape.quiet_share * len(users) * a_day)):
        if len(users):
            users.remove(week.rng.choice(users.members))
            week.day().went_quiet += 1
    on_demand = 0
    for _ in range(week.returns.take(shape.return_share * (shape.artists - len(users)) * a_day)):
        pk = week.rng.randint(1, shape.artists)
        while pk in users:
            pk = week.rng.randint(1, shape.artists)
        on_demand += use_once(pk, t, last_use_hours_ago=False)
        users.add(pk, step)
        week.day().came_back += 1
    return on_demand


def sweep_step(week: Week, t: datetime, on_demand: int) -> tuple[int, int]:
    """The sweep's share of the step: the due rows in claim order, as many as the paced
    share holds less the on-demand calls, each refreshed. Returns (due, served)."""
    from accounts.sumup import refresh, refresh_policy

    # Counted before serving: after it, the index still holds the served rows' old
    # entries until vacuum, and a count walks past every one (10x slower at a million).
    with timing(week, "sweep: count due"):
        needed = refresh.due_profiles(t).count()
    with timing(week, "sweep: read due rows"):
        due = refresh.due_profiles(t).order_by("sumup_refresh_due_at", "pk")
        served = held_rows(due, max(0, week.capacity - on_demand))
    with timing(week, "sweep: token_changes"):
        writes = [(held, refreshed(held, t)) for held in served]
    with timing(week, "sweep: UPDATE"):
        written = store(writes)
    check(written == len(served), f"{t}: {written} of {len(served)} refreshes stored")
    for held, changes in writes:
        assert held.sumup_refresh_due_at is not None and held.sumup_expires_at is not None
        week.latest_service = max(week.latest_service, t - held.sumup_refresh_due_at)
        week.day().renewed += "sumup_refresh_token" in changes
        if refresh_policy.is_active(held.sumup_token_used_at, t):
            margin = held.sumup_expires_at - t
            if margin <= timedelta(0):
                week.expired_active.add(held.pk)
            if week.least_margin is None or margin < week.least_margin:
                week.least_margin = margin
    return needed, len(served)


def run_step(week: Week, step: int) -> None:
    from django.db import transaction

    t = week.t0 + step * week.shape.step
    day = week.day()
    with transaction.atomic():
        with timing(week, "uses"):
            uses, on_demand = use_tokens(week, step, t)
            on_demand += comings_and_goings(week, step, t)
            day.uses += uses
        needed, served = sweep_step(week, t, on_demand)
        with timing(week, "checks"):
            found = find_expired_active(t, since=t - week.shape.step)
            age = oldest_refresh_token(t)
    week.expired_active.update(found)
    week.oldest_token_age = max(week.oldest_token_age, age)
    week.backlog.append(needed - served)
    day.needed_max = max(day.needed_max, needed)
    day.served += served
    day.on_demand += on_demand
    day.backlog_max = max(day.backlog_max, needed - served)
    day.expired_active += len(found)
    day.oldest_token_days = max(day.oldest_token_days, age / DAY)
    week.hour().calls += served + on_demand


def start_hour(week: Week, step: int) -> None:
    from accounts.sumup import headroom

    t = week.t0 + step * week.shape.step
    with timing(week, "checks"):
        measured = headroom.measure(t)
    week.hours.append(
        HourFigures(len(week.hours), 0, measured.needed_per_hour, measured.available_per_hour)
    )


def end_day(week: Week, step: int, started: float) -> None:
    """The day's last step is done: every active artist's token checked, the figures
    closed, a line printed."""
    t = week.t0 + step * week.shape.step
    day = week.day()
    with timing(week, "checks"):
        found = find_expired_active(t)
        day.active_at_end = active_count(t)
    fresh = set(found) - week.expired_active
    week.expired_active.update(found)
    day.expired_active += len(fresh)
    day.users_at_end = len(week.users)
    hours = [h.calls for h in week.hours[-24:]]
    day.calls_per_hour_max, day.calls_per_hour_mean = max(hours), sum(hours) / len(hours)
    day.wall_seconds = time.perf_counter() - started
    print(day_line(day), flush=True)
    log(f"simulated day {day.day} in {day.wall_seconds:.0f} s")


def simulate(week: Week) -> None:
    shape = week.shape
    a_hour = int(HOUR / shape.step)
    print(DAY_HEADER, flush=True)
    started = time.perf_counter()
    for step in range(shape.steps):
        if step % shape.steps_a_day == 0:
            week.days.append(DayFigures(len(week.days) + 1))
            started = time.perf_counter()
        if step % a_hour == 0:
            start_hour(week, step)
        run_step(week, step)
        if (step + 1) % shape.steps_a_day == 0 or step + 1 == shape.steps:
            end_day(week, step, started)


# --- report --------------------------------------------------------------------------------------

DAY_HEADER = (
    f"{'day':>3} {'due/step max':>12} {'served':>9} {'on demand':>9} {'backlog max':>11}"
    f" {'renewed':>8} {'uses':>9} {'back':>5} {'quiet':>5} {'expired active':>14}"
    f" {'oldest RT':>9} {'calls/h max':>11} {'mean':>8} {'active':>8} {'wall':>6}"
)


def day_line(d: DayFigures) -> str:
    return (
        f"{d.day:>3} {d.needed_max:>12,} {d.served:>9,} {d.on_demand:>9,} {d.backlog_max:>11,}"
        f" {d.renewed:>8,} {d.uses:>9,} {d.came_back:>5,} {d.went_quiet:>5,}"
        f" {d.expired_active:>14,} {d.oldest_token_days:>8.2f}d {d.calls_per_hour_max:>11,}"
        f" {d.calls_per_hour_mean:>8,.0f} {d.active_at_end:>8,} {d.wall_seconds:>5.0f}s"
    )


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    figure: str


def checks(week: Week, available: int) -> list[Check]:
    from accounts.sumup import refresh_policy

    step = week.shape.step
    limit = refresh_policy.renew_after() + step
    backlog_max = max(week.backlog)
    first, last = week.days[0].backlog_max, week.days[-1].backlog_max
    calls = [h.calls for h in week.hours]
    return [
        Check(
            "grants kept alive",
            week.oldest_token_age <= limit,
            f"oldest refresh token {week.oldest_token_age / DAY:.3f} d"
            f" (at most {limit / DAY:.3f} d: renewal after {refresh_policy.renew_after().days} d"
            f" + one {step.total_seconds():.0f}-s step)",
        ),
        Check(
            "active artists hold a valid access token",
            not week.expired_active and (week.least_margin is None or week.least_margin > step),
            f"{len(week.expired_active):,} active artists found with an expired token;"
            f" least validity left at an active artist's refresh"
            f" {seconds(week.least_margin):.0f} s (more than one step)",
        ),
        Check(
            "backlog within one step's capacity",
            backlog_max <= week.capacity,
            f"largest backlog {backlog_max:,} (capacity {week.capacity:,} a step);"
            f" longest past due at service {week.latest_service.total_seconds():.0f} s",
        ),
        Check(
            "backlog not growing",
            last <= first,
            f"largest backlog on day 1: {first:,}, on day {len(week.days)}: {last:,}",
        ),
        Check(
            "calls per hour within the paced share",
            max(calls) <= available,
            f"max {max(calls):,}/h, mean {sum(calls) / len(calls):,.0f}/h,"
            f" available {available:,}/h",
        ),
    ]


def seconds(span: timedelta | None) -> float:
    return span.total_seconds() if span is not None else float("nan")


def summary_lines(week: Week, available: int, results: list[Check]) -> list[str]:
    calls = [h.calls for h in week.hours]
    mean = sum(calls) / len(calls)
    artists = week.shape.artists
    lines = [f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.figure}" for c in results]
    lines.append(
        f"INFO  budget the policy uses: {mean / available:.1%} of the paced share on average"
        f" ({mean:,.0f} of {available:,} calls/h), {max(calls) / available:.1%} at its busiest"
        f" hour; the rule before (every connected artist's access token refreshed hourly)"
        f" would need at least {artists:,}/h, {artists / available:.1f}x what is available"
    )
    ratios = [h.calls / h.headroom_needed for h in week.hours if h.headroom_needed]
    if ratios:
        lines.append(
            "INFO  headroom's 'needed per hour' against the calls the hour then made:"
            f" needed {min(h.headroom_needed for h in week.hours):,}"
            f"-{max(h.headroom_needed for h in week.hours):,}/h, calls made"
            f" {min(ratios):.2f}-{max(ratios):.2f}x of it"
        )
    return lines


def context_figures(week: Week, available: int, loaded: Loaded) -> dict[str, Any]:
    from django.conf import settings

    from accounts.sumup import refresh

    shape = week.shape
    return {
        "artists": shape.artists,
        "days": shape.days,
        "steps": shape.steps,
        "active_share": shape.active_share,
        "return_share_per_day": shape.return_share,
        "quiet_share_per_day": shape.quiet_share,
        "use_every_hours": shape.use_every_steps * shape.step / HOUR,
        "loaded_roles": dict(loaded.roles),
        "budget": settings.SUMUP_API_RATE_LIMIT,
        "paced_interval_seconds": refresh.paced_interval(),
        "step_seconds": shape.step.total_seconds(),
        "capacity_per_step": week.capacity,
        "available_per_hour": available,
        "refresh_window_seconds": settings.SUMUP_REFRESH_WINDOW,
        "token_active_for_seconds": settings.SUMUP_TOKEN_ACTIVE_FOR,
        "renew_after_seconds": settings.SUMUP_REFRESH_TOKEN_RENEW_AFTER,
        "sumup_expires_in": SUMUP.expires_in,
        "cpus": os.cpu_count() or 1,
    }


# --- the whole benchmark --------------------------------------------------------------------------


def run_bench(args: argparse.Namespace, stack: contextlib.ExitStack) -> bool:
    """Load, simulate, report; True if every check passed."""
    begun = time.perf_counter()
    private = stack.enter_context(PrivateRedis())
    configure_refresh_process(f"{args.server}/{DB_NAME}", private.url, CLIENT_ID)
    from django.conf import settings

    from accounts.sumup import refresh

    stack.callback(drop_bench_database, args.server)
    prepare_database(args.server)
    step = timedelta(seconds=settings.SUMUP_REFRESH_SWEEP_INTERVAL)
    check(HOUR % step == timedelta(0), "the sweep interval must divide an hour")
    shape = Shape(
        artists=args.artists,
        days=args.days,
        active_share=args.active_share,
        return_share=args.return_share,
        quiet_share=args.quiet_share,
        use_every_steps=max(1, round(HOUR * args.use_every_hours / step)),
        step=step,
    )
    now = datetime.now(UTC)
    t0 = now - timedelta(seconds=now.timestamp() % step.total_seconds())
    log(f"loading {shape.artists:,} artists")
    loaded = load_artists(f"{args.server}/{DB_NAME}", shape, t0)
    log(f"loaded: {dict(loaded.roles)} in {sum(loaded.seconds.values()):.0f} s")
    interval = refresh.paced_interval()
    capacity = math.floor(step.total_seconds() / interval + 1e-9)
    available = math.floor(HOUR.total_seconds() / interval + 1e-9)
    week = Week(shape, t0, loaded.users, capacity)
    simulating = time.perf_counter()
    simulate(week)
    week.seconds["simulate (all)"] = time.perf_counter() - simulating
    results = checks(week, available)
    print("\n".join(summary_lines(week, available, results)))
    wall = {**loaded.seconds, **week.seconds, "total": time.perf_counter() - begun}
    print("wall time: " + ", ".join(f"{name} {s:.1f} s" for name, s in wall.items()))
    write_json(
        RESULTS_FILE,
        {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "context": context_figures(week, available, loaded),
            "checks": [asdict(c) for c in results],
            "oldest_refresh_token_days": week.oldest_token_age / DAY,
            "expired_active": len(week.expired_active),
            "backlog_max": max(week.backlog),
            "days": [asdict(d) for d in week.days],
            "hours": [asdict(h) for h in week.hours],
            "wall_seconds": {name: round(s, 2) for name, s in wall.items()},
        },
    )
    return all(c.passed for c in results)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 artists, one day")
    parser.add_argument("--artists", type=int, default=FULL_ARTISTS)
    parser.add_argument("--days", type=int, default=FULL_DAYS)
    parser.add_argument("--active-share", type=float, default=DEFAULT_ACTIVE_SHARE)
    parser.add_argument(
        "--return-share",
        type=float,
        default=DEFAULT_RETURN_SHARE,
        help="of the artists not using their token, coming back each day",
    )
    parser.add_argument(
        "--quiet-share",
        type=float,
        default=DEFAULT_QUIET_SHARE,
        help="of the users, going quiet each day",
    )
    parser.add_argument("--use-every-hours", type=float, default=DEFAULT_USE_EVERY_HOURS)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    args = parser.parse_args(argv)
    if args.quick:
        args.artists, args.days = QUICK_ARTISTS, QUICK_DAYS
    if args.artists < 1 or args.days < 1:
        parser.error("--artists and --days must be at least 1")
    if not 0 < args.active_share < 1 or not 0 <= args.return_share < 1:
        parser.error("--active-share must be between 0 and 1, --return-share below 1")
    if not 0 <= args.quiet_share < 1 or not 1 <= args.use_every_hours < 24:
        # At least an hour apart, every scheduled use is written (record_use's hour).
        parser.error("--quiet-share must be below 1, --use-every-hours from 1 to 24")
    args.server = args.server.rstrip("/")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_terminate)
    try:
        with contextlib.ExitStack() as stack:
            passed = run_bench(args, stack)
    except (BenchError, psycopg.Error, redis.RedisError) as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    print(f"\nwritten: {RESULTS_FILE.relative_to(PROJECT_DIR)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
