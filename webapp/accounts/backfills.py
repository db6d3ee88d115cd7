"""Backfills of the accounts app (see backfills.registry)."""

from accounts.sumup import status_backfill
from backfills.registry import Backfill, register

SUMUP_CONNECTION_STATUS = register(
    Backfill(
        name="sumup_connection_status",
        description=(
            "Give every artist that predates SumUp OAuth the status 'not_connected' and no "
            "stale token (the work of accounts.0004_migrate_existing_artists_to_sumup)."
        ),
        model="accounts.ArtistProfile",
        pending=status_backfill.pending_rows,
        apply=status_backfill.fill_rows,
    )
)
