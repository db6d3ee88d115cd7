"""Checks shared by the backfill tests."""

import itertools

from accounts.models import ArtistProfile
from backfills.models import BackfillBatch, BackfillRun


def nulls() -> int:
    """Artists the SumUp status backfill has not reached."""
    return ArtistProfile.objects.filter(sumup_connection_status__isnull=True).count()


def assert_ledger_covers_each_row_once(run: BackfillRun, expected_rows: int) -> None:
    """The run's ledger: contiguous key ranges to the table's end, rows adding up."""
    batches = list(BackfillBatch.objects.filter(run=run).order_by("low"))
    assert sum(batch.rows for batch in batches) == expected_rows == run.rows_done
    for before, after in itertools.pairwise(batches):
        assert before.high is not None and after.low == before.high, "ranges are contiguous"
    assert batches[-1].high is None, "the last batch ran to the end of the table"
