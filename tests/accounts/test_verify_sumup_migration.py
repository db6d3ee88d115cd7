"""`manage.py verify_sumup_migration`: the counts it reports and the check that fails."""

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ConnectionStatus


@pytest.mark.django_db
def test_verify_reports_counts_and_passes_on_a_consistent_database(make_artist, capsys):
    make_artist()
    connected = make_artist()
    connected.update_sumup_connection({"access_token": "a", "refresh_token": "r", "expires_in": 60})

    call_command("verify_sumup_migration")

    out = capsys.readouterr().out
    assert "Total artists: 2" in out
    assert "connected: 1" in out and "not_connected: 1" in out
    assert "All SumUp migration checks passed." in out


@pytest.mark.django_db
def test_verify_fails_when_a_connected_artist_holds_no_token(make_artist, capsys):
    make_artist(sumup_connection_status=ConnectionStatus.CONNECTED)
    with pytest.raises(CommandError, match="1 check\\(s\\) failed"):
        call_command("verify_sumup_migration")
    assert "1 connected artist(s) hold no access token" in capsys.readouterr().out
