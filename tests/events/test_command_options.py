"""Every option of the project's commands is checked as it enters: a bad value ends the
command with argparse's status 2 and one line, `error: ...`, naming the option and the
form it accepts, before anything is read from or written to the database."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command, execute_from_command_line

from accounts.models import ArtistProfile
from backfills.models import BackfillRun
from campaigns.models import Campaign

BAD_OPTIONS = [
    (["backfill", "run", "sumup_connection_status", "--batch-size", "-5"], "--batch-size"),
    (["backfill", "run", "sumup_connection_status", "--batch-size", "0"], "--batch-size"),
    (["backfill", "run", "sumup_connection_status", "--batch-size", "99999999"], "--batch-size"),
    (["backfill", "run", "sumup_connection_status", "--batch-size", "ten"], "--batch-size"),
    (["notify_artists_sumup_migration", "--rate", "fast"], "--rate"),
    (["notify_artists_sumup_migration", "--rate", "fast", "--dry-run"], "--rate"),
    (["notify_artists_sumup_migration", "--rate", "0/s"], "--rate"),
    (["notify_artists_sumup_migration", "--rate", "5/0s"], "--rate"),
    (["refresh_sumup_tokens", "--wait", "--timeout", "0"], "--timeout"),
    (["refresh_sumup_tokens", "--wait", "--timeout", "nan"], "--timeout"),
    (["refresh_sumup_tokens", "--wait", "--timeout", "-1"], "--timeout"),
    (["reencrypt_sumup_tokens", "--batch-size", "0"], "--batch-size"),
    (["reencrypt_sumup_tokens", "--batch-size", "1e3"], "--batch-size"),
    (["backup_db", "--dir", "{a_file}"], "--dir"),
    (["restore_db", "{tmp_path}/no-such-backup.sqlite3", "--yes"], "file"),
    (["restore_db", "{tmp_path}", "--yes"], "file"),
]


@pytest.fixture
def due_artist(make_artist):
    """An artist the sweep would claim, with tokens a re-encryption would rewrite."""
    artist = make_artist(is_approved=True)
    artist.update_sumup_connection({"access_token": "a", "refresh_token": "r", "expires_in": 60})
    return artist


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("argv", "option"), BAD_OPTIONS, ids=[" ".join(argv[:1] + argv[-2:]) for argv, _ in BAD_OPTIONS]
)
def test_a_bad_option_stops_the_command_before_any_work(argv, option, due_artist, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("in the way")
    tokens_before = _stored_tokens(due_artist)

    given = [arg.format(a_file=a_file, tmp_path=tmp_path) for arg in argv]

    with pytest.raises(SystemExit) as stopped:
        execute_from_command_line(["manage.py", *given])

    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.splitlines() == [error.strip()]
    assert error.startswith(f"error: argument {option}: must be ")
    assert not BackfillRun.objects.exists()
    assert not Campaign.objects.exists()
    assert _stored_tokens(due_artist) == tokens_before
    assert ArtistProfile.objects.get(pk=due_artist.pk).sumup_refresh_enqueued_at is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file"]


def _stored_tokens(artist: ArtistProfile) -> tuple[str | None, str | None]:
    columns = ArtistProfile.objects.values_list("sumup_access_token", "sumup_refresh_token")
    return columns.get(pk=artist.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["backfill", "run", "no_such_backfill"], "no backfill named 'no_such_backfill'"),
        (["healthcheck", "--any"], "--any and --destination go with --worker"),
    ],
)
def test_a_usage_error_found_by_the_command_itself_has_status_2(args, says):
    with pytest.raises(CommandError, match=says) as refused:
        call_command(*args)
    assert refused.value.returncode == 2
    assert not BackfillRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("given", "stored"), [("600/min", "600/min"), ("unlimited", "")])
def test_the_rate_option_accepts_a_rate_or_no_limit(given, stored, due_artist, capsys):
    call_command("notify_artists_sumup_migration", "--rate", given)

    assert Campaign.objects.get().rate_limit == stored
    assert f"at {given if stored else 'no rate limit'}" in capsys.readouterr().out


@pytest.mark.django_db
def test_restore_db_without_yes_in_a_non_interactive_run_stops_before_reading_the_backup(
    tmp_path, capsys
):
    # No manifest beside it: reading the backup would fail otherwise, with status 1.
    backup = tmp_path / "site.sqlite3"
    backup.write_bytes(b"not read")

    with pytest.raises(SystemExit) as stopped:
        execute_from_command_line(["manage.py", "restore_db", str(backup)])

    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        "error: Refusing to restore without confirmation in a non-interactive run: pass --yes\n"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["backfill", "run", "sumup_connection_status", "--batch-size", "0"],
            "error: argument --batch-size: must be a whole number from 1 to 50000, got '0'",
        ),
        (["backfill", "launch"], "error: argument action: invalid choice: 'launch'"),
        (["refresh_sumup_tokens", "--wiat"], "error: unrecognized arguments: --wiat"),
        (["restore_db"], "error: the following arguments are required: file"),
        (["healthcheck", "--any"], "error: --any and --destination go with --worker"),
    ],
)
def test_manage_py_prints_a_usage_error_as_one_line_with_status_2(args, says):
    result = subprocess.run(
        [sys.executable, str(settings.WEBAPP_DIR / "manage.py"), *args],
        env={**os.environ, "DEBUG": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(says)
    assert result.stdout == ""
