"""Fill the SumUp status of artists that existed before the SumUp columns.

Keyset batches: each batch finds the next BATCH_SIZE primary keys after a cursor through
the primary-key index, updates that range in its own short transaction, and moves on.
The filter `sumup_connection_status IS NULL` makes a batch idempotent: running it twice,
or resuming after a crash, changes nothing already done.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction

from backfills.keyset import apply_next_range

log = logging.getLogger(__name__)

BATCH_SIZE = 5_000  # rows per transaction: ~10-50 ms of row locks on PostgreSQL

STALE_TOKEN_COLUMNS = (
    "sumup_access_token",
    "sumup_refresh_token",
    "sumup_token_type",
    "sumup_expires_at",
    "sumup_scope",
    "sumup_merchant_code",
    "sumup_connected_at",
)


@dataclass
class BackfillReport:
    rows_updated: int = 0
    batches: int = 0
    longest_batch_seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list)


def pending_rows(rows: "models.QuerySet[Any]") -> "models.QuerySet[Any]":
    """The idempotent filter: rows never given a status."""
    return rows.filter(sumup_connection_status__isnull=True)


def fill_rows(rows: "models.QuerySet[Any]") -> int:
    return rows.update(
        sumup_connection_status="not_connected", **dict.fromkeys(STALE_TOKEN_COLUMNS)
    )


def pending_count(model: type[models.Model], using: str = "default") -> int:
    return pending_rows(model._default_manager.db_manager(using).all()).count()


def run_batch(
    model: type[models.Model], after_pk: int | None, batch_size: int, using: str
) -> tuple[int | None, int]:
    """Fill one key range; return (the range's last pk or None when done, rows updated)."""
    manager = model._default_manager.db_manager(using)
    with transaction.atomic(using=using):
        return apply_next_range(manager.all(), pending_rows, fill_rows, after_pk, batch_size)


def backfill_connection_status(
    model: type[models.Model],
    *,
    using: str = "default",
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[BackfillReport], None] | None = None,
) -> BackfillReport:
    report = BackfillReport()
    cursor: int | None = None
    while True:
        started = time.perf_counter()
        cursor, updated = run_batch(model, cursor, batch_size, using)
        elapsed = time.perf_counter() - started
        report.rows_updated += updated
        report.batches += 1
        report.batch_seconds.append(elapsed)
        report.longest_batch_seconds = max(report.longest_batch_seconds, elapsed)
        if on_batch is not None:
            on_batch(report)
        if cursor is None:
            break
    log.debug(
        "SumUp status backfill: %d rows in %d batches, longest batch %.3fs",
        report.rows_updated,
        report.batches,
        report.longest_batch_seconds,
    )
    return report
