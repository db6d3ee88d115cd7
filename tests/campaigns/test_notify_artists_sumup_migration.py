"""`manage.py notify_artists_sumup_migration`: who it emails, its dry run, and that a
second run emails no one twice."""

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line

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


@pytest.mark.django_db
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "for real"])
def test_it_refuses_a_rate_it_cannot_read_before_anything_else(dry_run, make_artist, capsys):
    make_artist(is_approved=True)

    with pytest.raises(CommandError) as refused:
        call_command("notify_artists_sumup_migration", rate="fast", dry_run=dry_run)

    assert refused.value.returncode == 2
    assert str(refused.value) == (
        "argument --rate: must be a rate such as 10/s, 600/min or 5/10s, above zero, or "
        "'unlimited', got 'fast'"
    )
    assert capsys.readouterr().out == "", "nothing counted, nothing shown"
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_it_exits_with_one_line_and_status_2_for_a_bad_rate_in_a_dry_run(capsys):
    with pytest.raises(SystemExit) as stopped:
        execute_from_command_line(
            ["manage.py", "notify_artists_sumup_migration", "--rate", "fast", "--dry-run"]
        )

    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: argument --rate: must be a rate such as 10/s, 600/min or 5/10s, above zero, "
        "or 'unlimited', got 'fast'"
    ]


@pytest.mark.django_db(transaction=True)
def test_it_counts_skipped_recipients_beside_the_bar_not_as_sent(
    project_worker, make_artist, mailoutbox, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")  # the bar's line whole, on a console of no width
    make_artist(is_approved=True)
    make_artist(is_approved=True)
    call_command("notify_artists_sumup_migration", "--wait")
    newcomer = make_artist(is_approved=True)
    capsys.readouterr()

    call_command("notify_artists_sumup_migration", "--wait")

    out = capsys.readouterr().out
    bar = next(line for line in out.splitlines() if " emails · " in line)
    assert "1/1 emails · sent 1, failed 0, unknown 0; skipped 2" in bar, bar
    assert [message.to for message in mailoutbox[2:]] == [[newcomer.user.email]]
    assert out.rstrip().endswith("1 sent, 0 failed, 0 unknown, 2 skipped.")
