"""The statements that move a batch of recipient rows on, each a conditional UPDATE over
the whole batch: a claim names the rows and the attempt number each was read with, and
every later change names the claim (status and attempt number), so a row that moved
meanwhile is left as it is (campaigns.sending says when each runs)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from campaigns.models import Recipient

S = Recipient.Status
_TABLE = Recipient._meta.db_table


def claim(
    rows: Sequence[Recipient],
    *,
    emails: Sequence[str],
    marks: Sequence[datetime],
    key: uuid.UUID,
    now: datetime,
    lasting: timedelta,
) -> set[int]:
    """Own these `queued` rows for one attempt under the batch key `key`, each still at
    the attempt number it was read with, each with the address and lapse mark given;
    returns the ids won."""
    if not rows:
        return set()
    sql = f"""
        UPDATE {_TABLE} AS r
        SET status = %s, attempts = r.attempts + 1, email = v.email, lapse_mark = v.mark,
            claimed_at = %s, claimed_until = %s, dispatched_at = NULL, updated_at = %s,
            batch_key = %s
        FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::timestamptz[])
            AS v(id, attempts, email, mark)
        WHERE r.id = v.id AND r.attempts = v.attempts AND r.status = %s
        RETURNING r.id
    """  # noqa: S608 (the table name is the model's own)
    params: list[Any] = [S.SENDING, now, now + lasting, now, key]
    params += [[row.pk for row in rows], [row.attempts for row in rows], list(emails), list(marks)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, S.QUEUED])
        return {found for (found,) in cursor.fetchall()}


def record_sent(rows: Sequence[Recipient], message_ids: Sequence[str], now: datetime) -> int:
    """`sent`, each with its message id, for the rows still under this claim (`unknown`
    too: recovery may have given up on a claim that then succeeded)."""
    if not rows:
        return 0
    sql = f"""
        UPDATE {_TABLE} AS r
        SET status = %s, message_id = v.message_id, sent_at = %s, last_error = '',
            claimed_until = NULL, updated_at = %s
        FROM unnest(%s::bigint[], %s::int[], %s::text[]) AS v(id, attempts, message_id)
        WHERE r.id = v.id AND r.attempts = v.attempts AND r.status IN (%s, %s)
    """  # noqa: S608 (the table name is the model's own)
    ids = [row.pk for row in rows]
    attempts = [row.attempts for row in rows]
    trimmed = [message_id[:255] for message_id in message_ids]
    with connection.cursor() as cursor:
        cursor.execute(sql, [S.SENT, now, now, ids, attempts, trimmed, S.SENDING, S.UNKNOWN])
        return int(cursor.rowcount)


def as_read(rows: Sequence[Recipient], status: str) -> Q:
    """The rows, only while in `status` at the attempt number each has in memory."""
    by_attempts: dict[int, list[int]] = {}
    for row in rows:
        by_attempts.setdefault(row.attempts, []).append(row.pk)
    match = Q(pk__in=[])
    for attempts, ids in by_attempts.items():
        match |= Q(pk__in=ids, attempts=attempts)
    return match & Q(status=status)


def update(rows: Sequence[Recipient], current: str, /, **fields: Any) -> set[int]:
    """Set `fields` on the rows still in status `current` at their attempt number in
    memory; returns the ids of those it moved."""
    if not rows:
        return set()
    with transaction.atomic():
        mine = Recipient.objects.filter(as_read(rows, current)).select_for_update()
        ids = set(mine.values_list("pk", flat=True))
        Recipient.objects.filter(pk__in=ids).update(**fields)
    return ids
