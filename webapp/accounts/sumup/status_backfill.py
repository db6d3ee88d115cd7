"""Fill the SumUp status of artists that existed before the SumUp columns.

The backfill `sumup_connection_status` (accounts.backfills) is these two functions; the
backfills engine runs them, one key range per short transaction, inline in
accounts.0004 or on the workers. The filter `sumup_connection_status IS NULL` makes a
batch idempotent: running it twice, or resuming after a crash, changes nothing already
done.
"""

from typing import Any

from django.db import models

from accounts.sumup.connection import OAUTH_COLUMNS, ConnectionStatus

# Every other column of 0003: on an artist who predates SumUp, a token, merchant or date
# there can only be stale, so the fill clears them as it sets the status.
STALE_TOKEN_COLUMNS = tuple(
    column for column in OAUTH_COLUMNS if column != "sumup_connection_status"
)


def pending_rows(rows: "models.QuerySet[Any]") -> "models.QuerySet[Any]":
    """The idempotent filter: rows never given a status."""
    return rows.filter(sumup_connection_status__isnull=True)


def fill_rows(rows: "models.QuerySet[Any]") -> int:
    return rows.update(
        sumup_connection_status=ConnectionStatus.NOT_CONNECTED,
        **dict.fromkeys(STALE_TOKEN_COLUMNS),
    )
