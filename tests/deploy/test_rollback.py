"""The runbook's rollback (Step 6) to accounts 0002, on a deployed database holding artists
connected to SumUp and a campaigns history: it drops the SumUp columns, keeps every
artist, campaign, recipient and suppression, and a deploy brings the columns back."""

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.deployed_database import deployed_database
else:
    from support.deployed_database import deployed_database

ARTISTS = 12
KEPT = [
    "accounts_user",
    "accounts_artistprofile",
    "campaigns_campaign",
    "campaigns_campaignaction",
    "campaigns_recipient",
    "campaigns_suppression",
]
DROPPED_COLUMNS = {
    "sumup_access_token",
    "sumup_refresh_token",
    "sumup_merchant_code",
    "sumup_connection_status",
    "sumup_business_name",
    "sumup_token_version",
    "sumup_refresh_failures",
    "sumup_last_error",
    "sumup_lapse_notified_at",
}


@pytest.mark.parametrize("vendor", ["sqlite", "postgresql"])
def test_rollback_to_0002_keeps_artists_campaigns_and_suppressions(
    vendor: str, tmp_path: Path
) -> None:
    with deployed_database(vendor, tmp_path) as d:
        d.manage("migrate")
        d.seed(artists=ARTISTS)
        counts = d.row_counts()
        assert counts["campaigns_recipient"] == ARTISTS
        assert counts["campaigns_suppression"] == ARTISTS // 2
        links = d.sql("SELECT email, artist_id FROM campaigns_recipient ORDER BY email")

        first = d.manage("migrate", "accounts", "0003_add_sumup_oauth_fields")
        second = d.manage("migrate", "accounts", "0002_emailverificationtoken")

        assert "campaigns" not in first.stdout + second.stdout, "no campaigns migration is undone"
        shown = d.manage("showmigrations", "accounts", "campaigns").stdout
        assert "[ ] 0003_add_sumup_oauth_fields" in shown
        assert "[X] 0001_initial" in shown.split("campaigns")[1]
        assert not DROPPED_COLUMNS & d.columns("accounts_artistprofile")
        after = d.row_counts()
        assert {table: after[table] for table in KEPT} == {table: counts[table] for table in KEPT}
        assert d.sql("SELECT email, artist_id FROM campaigns_recipient ORDER BY email") == links

        d.manage("deploy", "--skip-backup")

        assert d.columns("accounts_artistprofile") >= DROPPED_COLUMNS
        again = d.row_counts()
        assert {table: again[table] for table in KEPT} == {table: counts[table] for table in KEPT}
        statuses = d.sql("SELECT DISTINCT sumup_connection_status FROM accounts_artistprofile")
        assert statuses == [("not_connected",)], "the tokens went with the rollback"
