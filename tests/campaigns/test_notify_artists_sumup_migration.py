"""`manage.py notify_artists_sumup_migration`: who it emails, its dry run, and that a
second run emails no one twice."""

import pytest
from django.core.management import call_command

from accounts.models import ConnectionStatus
from campaigns.models import Campaign


@pytest.mark.django_db
def test_notify_dry_run_counts_only_approved_artists_who_must_connect(make_artist, capsys):
    make_artist(is_approved=True, display_name="Nina Blue")
    make_artist(is_approved=True, sumup_connection_status=ConnectionStatus.EXPIRED)
    make_artist(is_approved=False)
    done = make_artist(is_approved=True)
    done.update_sumup_connection({"access_token": "a", "expires_in": 60})

    call_command("notify_artists_sumup_migration", "--approved-only", "--dry-run")

    out = capsys.readouterr().out
    assert "Audience: 2 approved artists need to connect SumUp." in out
    assert "Hello Nina Blue," in out
    assert "http://127.0.0.1:8000/accounts/dashboard/" in out
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in out
    assert "Dry run: nothing was sent." in out
    assert not Campaign.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_notify_emails_each_artist_who_must_connect_once_even_when_run_again(
    project_worker, make_artist, mailoutbox, capsys
):
    waiting = make_artist(is_approved=True)
    expired = make_artist(is_approved=True, sumup_connection_status=ConnectionStatus.EXPIRED)
    make_artist(is_approved=False)

    call_command("notify_artists_sumup_migration", "--approved-only", "--wait")
    call_command("notify_artists_sumup_migration", "--approved-only", "--wait")

    assert sorted(message.to[0] for message in mailoutbox) == sorted(
        [waiting.user.email, expired.user.email]
    )
    out = capsys.readouterr().out
    assert "Audience: 2 approved artists need to connect SumUp." in out
    assert "Audience: 0 approved artists need to connect SumUp." in out
    assert "Skipped: 0 suppressed address(es), 2 already notified" in out
    first, second = Campaign.objects.order_by("pk")
    assert (first.kind, first.status, first.counts()["sent"]) == ("sumup_reconnect", "done", 2)
    assert (second.status, second.counts()["skipped"], second.counts()["sent"]) == ("done", 2, 0)
