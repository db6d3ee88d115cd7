"""What the live database did after the backup was taken, which a restore rolls back.

Two things matter once the backup's rows are back: recipients the provider already has
but the backup shows as queued or sending (a resumed campaign would send them again),
and artists whose SumUp refresh token was rotated (SumUp refuses the restored one).
Both are read from the live database just before the restore replaces it, and matched
to the restored rows afterwards. A restored campaign or artist the live database did
not hold as the same row (another database, a fresh one, or none readable) is counted
apart, as "unknown": anything of it may have happened since.

SQL is raw and checks for every table and column: either database may be at an older
schema than this code (a backup taken before a migration; a live database rolled back).
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from campaigns.models import Campaign, Recipient
from operations.backups.base import Finding
from operations.backups.db import database_settings, open_connection, vendor

CAMPAIGNS = Campaign._meta.db_table
RECIPIENTS = Recipient._meta.db_table
PROFILES = "accounts_artistprofile"
# A recipient in one of these, claimed or sent after the backup, reached the provider
# (or may have: `sending` and `unknown`). `queued` again means the provider or the rate
# limiter said nothing went out; `failed` and `skipped` sent nothing.
HANDED_OUT = (
    Recipient.Status.SENDING,
    Recipient.Status.SENT,
    Recipient.Status.UNKNOWN,
    Recipient.Status.DELIVERED,
    Recipient.Status.BOUNCED,
    Recipient.Status.COMPLAINED,
    Recipient.Status.UNSUBSCRIBED,
)
# What a resumed campaign still works on: queued rows are sent; sending rows become
# unknown once their claim lapses. Either way the restored row does not say "sent".
UNSENT = (Recipient.Status.QUEUED, Recipient.Status.SENDING)


@dataclass
class Live:
    """The live database just before the restore; empty with `problem` when unreadable."""

    campaigns: dict[int, Any] = field(default_factory=dict)  # id -> created_at, as stored
    handed_out: set[int] = field(default_factory=set)  # recipient ids
    artists: dict[int, Any] = field(default_factory=dict)  # profile id -> user id
    rotated: set[int] = field(default_factory=set)  # profile ids with a newer refresh token
    problem: str = ""


def _columns(cursor: Any, table: str) -> set[str]:
    # From an empty result rather than introspection, which on SQLite needs a connection
    # registered under its alias (the live database's is not).
    cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")  # noqa: S608 (our identifier)
    return {str(column[0]) for column in cursor.description}


def _tables(db: BaseDatabaseWrapper, cursor: Any) -> set[str]:
    return set(db.introspection.table_names(cursor))


def read_live(since: datetime) -> Live:
    """Read the live database (a connection of its own, closed before the restore)."""
    settings_dict = database_settings()
    if vendor() == "sqlite" and not Path(str(settings_dict["NAME"])).is_file():
        return Live(problem="there is no live database file")
    live = Live()
    try:
        with open_connection(settings_dict, "restore_live") as db, db.cursor() as cursor:
            tables = _tables(db, cursor)
            moment = db.ops.adapt_datetimefield_value(since)
            if {CAMPAIGNS, RECIPIENTS} <= tables:
                cursor.execute(f"SELECT id, created_at FROM {CAMPAIGNS}")  # noqa: S608
                live.campaigns = dict(cursor.fetchall())
                marks = ", ".join(["%s"] * len(HANDED_OUT))
                cursor.execute(
                    f"SELECT id FROM {RECIPIENTS} WHERE status IN ({marks}) "  # noqa: S608
                    "AND (claimed_at >= %s OR sent_at >= %s)",
                    [*HANDED_OUT, moment, moment],
                )
                live.handed_out = {row[0] for row in cursor.fetchall()}
            if PROFILES in tables and "sumup_refresh_token_issued_at" in _columns(cursor, PROFILES):
                cursor.execute(f"SELECT id, user_id FROM {PROFILES}")  # noqa: S608
                live.artists = dict(cursor.fetchall())
                cursor.execute(
                    f"SELECT id FROM {PROFILES} WHERE sumup_refresh_token_issued_at >= %s",  # noqa: S608
                    [moment],
                )
                live.rotated = {row[0] for row in cursor.fetchall()}
    except DatabaseError as exc:
        return Live(problem=f"the live database could not be read ({str(exc).strip()})")
    return live


@dataclass(frozen=True)
class Resends:
    """Restored recipients shown unsent that the provider has, or may have, by campaign."""

    known: Counter[int]  # handed to the provider after the backup, by the live database
    unknown: Counter[int]  # in campaigns the live database did not hold: may have been
    names: dict[int, str]

    def note(self, campaign_id: int) -> str:
        """What a campaign's pause records, for staff deciding whether to resume it."""
        parts = []
        if self.known[campaign_id]:
            parts.append(
                f"{self.known[campaign_id]} recipient(s) handed to the provider after the "
                "backup show here as queued or sending"
            )
        if self.unknown[campaign_id]:
            parts.append(
                f"{self.unknown[campaign_id]} queued or sending recipient(s) may have been "
                "sent after the backup"
            )
        return "restored from a backup" + (": " + "; ".join(parts) if parts else "")


def resends(db: BaseDatabaseWrapper, live: Live) -> Resends:
    """Recipients of the restored database's unfinished campaigns that a resume would
    send although the provider may have them already."""
    known: Counter[int] = Counter()
    unknown: Counter[int] = Counter()
    names: dict[int, str] = {}
    with db.cursor() as cursor:
        if not {CAMPAIGNS, RECIPIENTS} <= _tables(db, cursor):
            return Resends(known, unknown, names)
        marks = ", ".join(["%s"] * len(UNSENT))
        cursor.execute(
            f"SELECT r.id, c.id, c.created_at, c.name FROM {RECIPIENTS} r "  # noqa: S608
            f"JOIN {CAMPAIGNS} c ON c.id = r.campaign_id "
            f"WHERE c.status IN (%s, %s) AND r.status IN ({marks})",
            [Campaign.Status.RUNNING, Campaign.Status.PAUSED, *UNSENT],
        )
        for recipient_id, campaign_id, created_at, name in cursor.fetchall():
            names[campaign_id] = name
            if live.campaigns.get(campaign_id) != created_at:
                unknown[campaign_id] += 1
            elif recipient_id in live.handed_out:
                known[campaign_id] += 1
    return Resends(known, unknown, names)


def resend_finding(found: Resends, live: Live, since: str) -> Finding:
    def listing(counts: Counter[int]) -> str:
        return ", ".join(f"#{cid} {found.names[cid]!r}: {n}" for cid, n in sorted(counts.items()))

    parts = []
    known, unknown = sum(found.known.values()), sum(found.unknown.values())
    if known:
        parts.append(
            f"{known} recipient(s) were handed to the provider after the backup was taken "
            f"and show here as queued or sending; resuming sends them again "
            f"({listing(found.known)})"
        )
    if unknown:
        why = live.problem or "the live database did not hold these campaigns"
        parts.append(
            f"{unknown} queued or sending recipient(s) may have been sent after {since}, "
            f"unknown as {why} ({listing(found.unknown)})"
        )
    if not parts:
        return Finding(
            "Sent after the backup",
            "ok",
            "no recipient shown here as queued or sending was handed to the provider since",
        )
    return Finding("Sent after the backup", "warn", "; ".join(parts))


def _connected_artists(db: BaseDatabaseWrapper) -> dict[int, Any]:
    with db.cursor() as cursor:
        if PROFILES not in _tables(db, cursor) or "sumup_refresh_token" not in _columns(
            cursor, PROFILES
        ):
            return {}
        cursor.execute(
            f"SELECT id, user_id FROM {PROFILES} WHERE sumup_refresh_token IS NOT NULL"  # noqa: S608
        )
        return dict(cursor.fetchall())


def rotation_finding(db: BaseDatabaseWrapper, live: Live, since: str) -> Finding:
    """Artists whose restored refresh token SumUp has already replaced, so refuses."""
    connected = _connected_artists(db)
    same = {pk for pk, user_id in connected.items() if live.artists.get(pk) == user_id}
    rotated = len(same & live.rotated)
    unknown = len(connected) - len(same)
    consequence = (
        "SumUp refuses a refresh token it has replaced: their next refresh fails and they "
        "are asked to reconnect (the notice goes out once campaigns are resumed)"
    )
    parts = []
    if rotated:
        parts.append(
            f"{rotated} connected artist(s) got a new SumUp refresh token after the backup "
            "was taken, so the restored one is spent"
        )
    if unknown:
        why = live.problem or "the live database did not hold them"
        parts.append(
            f"{unknown} connected artist(s) may have had their refresh token rotated after "
            f"{since}, unknown as {why}"
        )
    if not parts:
        return Finding(
            "SumUp refresh tokens",
            "ok",
            f"none of the {len(connected)} connected artist(s) had a token rotated since",
        )
    return Finding("SumUp refresh tokens", "warn", f"{'; '.join(parts)}. {consequence}")
