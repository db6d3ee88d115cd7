"""The keyset step every batched backfill takes: the next `size` primary keys after a
cursor, found through the primary-key index (never OFFSET over the whole table)."""

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet

Rows = QuerySet[Any]


def apply_next_range(
    all_rows: Rows,
    pending: Callable[[Rows], Rows],
    apply: Callable[[Rows], int],
    cursor: int | None,
    size: int,
) -> tuple[int | None, int]:
    """Apply to the pending rows among the next `size` keys after `cursor`.

    Returns (the range's last key, or None when it ran to the end of the table; rows
    changed). The caller owns the transaction.
    """
    keys = all_rows.order_by("pk")
    if cursor is not None:
        keys = keys.filter(pk__gt=cursor)
    high = keys.values_list("pk", flat=True)[size - 1 : size].first()
    rows = pending(all_rows)
    if cursor is not None:
        rows = rows.filter(pk__gt=cursor)
    if high is not None:
        rows = rows.filter(pk__lte=high)
    return high, apply(rows)
