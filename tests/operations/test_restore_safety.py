"""restore_db brings nothing back running, refuses tokens it cannot read, and says what
the live database did after the backup: on SQLite and PostgreSQL, as an operator runs it."""

import hashlib
import os

from accounts.sumup import crypto

# A second Fernet key, public like the suite's own: "a key that is no longer configured".
OTHER_TOKEN_KEY = "wnEAIRzQa8nuhSfzBiAFeD6OyznU2L7x-D7SbQzKdqY="

# A campaign sending to the three seeded artists, a draft, and a backfill on the workers.
WORK = """
from django.utils import timezone
from accounts.models import ArtistProfile
from backfills.models import BackfillRun
from campaigns.models import Campaign, Recipient
running = Campaign.objects.create(
    name="Spring reconnect", status="running", started_at=timezone.now()
)
for profile in ArtistProfile.objects.select_related("user"):
    Recipient.objects.create(campaign=running, artist=profile, email=profile.user.email)
Campaign.objects.create(name="Autumn draft", status="draft")
BackfillRun.objects.create(
    backfill="sumup_connection_status", status="running", rows_total=3, generation=1,
    started_at=timezone.now(), heartbeat_at=timezone.now(),
)
"""
# What the live site does after the backup: one message accepted by the provider, one
# in flight, and Artist 1's refresh token rotated by SumUp.
AFTER_BACKUP = """
from django.utils import timezone
from accounts.models import ArtistProfile
from campaigns.models import Recipient
now = timezone.now()
Recipient.objects.filter(email="artist0@example.com").update(
    status="sent", claimed_at=now, sent_at=now, message_id="m-0"
)
Recipient.objects.filter(email="artist1@example.com").update(status="sending", claimed_at=now)
ArtistProfile.objects.get(display_name="Artist 1").update_sumup_connection(
    {"access_token": "access-2", "refresh_token": "refresh-2", "expires_in": 3600}
)
"""
STATE = """
from backfills.models import BackfillRun
from campaigns.models import Campaign, CampaignAction, Recipient
for c in Campaign.objects.order_by("pk"):
    print("campaign", c.name, c.status)
for r in BackfillRun.objects.order_by("pk"):
    print("backfill", r.backfill, r.status, [e.action for e in r.events.order_by("pk")])
for a in CampaignAction.objects.order_by("pk"):
    print("action", a.campaign.name, a.action, a.actor, "|", a.detail)
print("recipients", sorted(Recipient.objects.values_list("status", flat=True)))
"""


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _state(site) -> list[str]:
    lines: list[str] = site.manage("shell", "--no-imports", "-c", STATE).stdout.splitlines()
    return lines


def _line(output: str, start: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith(start)]
    return line


def test_it_brings_running_campaigns_and_backfills_back_paused(site) -> None:
    site.manage("shell", "-c", WORK)
    backup = site.backup()

    restored = site.manage("restore_db", str(backup), "--yes")

    assert _line(restored.stdout, "WARN Paused:") == (
        "WARN Paused: 1 campaign(s) (#1) and 1 backfill run(s) (#1); nothing resumes until "
        "staff resume each (admin; `manage.py backfill resume NAME`) after reading this report"
    )
    state = _state(site)
    assert state[:3] == [
        "campaign Spring reconnect paused",
        "campaign Autumn draft draft",
        "backfill sumup_connection_status paused ['pause']",
    ]
    assert "action Spring reconnect paused restore_db | restored from a backup" in state
    assert state[-1] == "recipients ['queued', 'queued', 'queued']"
    assert "Restore complete; the database matches the backup." in restored.stdout


def test_a_restore_with_nothing_running_pauses_nothing(site) -> None:
    backup = site.backup()

    restored = site.manage("restore_db", str(backup), "--yes")

    assert "OK   Paused: no campaign or backfill run was running" in restored.stdout
    assert (
        "OK   Sent after the backup: no recipient shown here as queued or sending was "
        "handed to the provider since" in restored.stdout
    )
    assert (
        "OK   SumUp refresh tokens: none of the 1 connected artist(s) had a token rotated "
        "since" in restored.stdout
    )


def test_it_counts_what_was_sent_and_rotated_after_the_backup(site) -> None:
    site.manage("shell", "-c", WORK)
    backup = site.backup()
    site.manage("shell", "-c", AFTER_BACKUP)

    restored = site.manage("restore_db", str(backup), "--yes")

    assert _line(restored.stdout, "WARN Sent after the backup:") == (
        "WARN Sent after the backup: 2 recipient(s) were handed to the provider after the "
        "backup was taken and show here as queued or sending; resuming sends them again "
        "(#1 'Spring reconnect': 2)"
    )
    tokens = _line(restored.stdout, "WARN SumUp refresh tokens:")
    assert tokens.startswith(
        "WARN SumUp refresh tokens: 1 connected artist(s) got a new SumUp refresh token "
        "after the backup was taken, so the restored one is spent. SumUp refuses"
    )
    assert "asked to reconnect" in tokens
    state = _state(site)
    # Staff deciding whether to resume read the same count on the campaign's log.
    assert (
        "action Spring reconnect paused restore_db | restored from a backup: 2 recipient(s) "
        "handed to the provider after the backup show here as queued or sending"
    ) in state
    assert state[-1] == "recipients ['queued', 'queued', 'queued']"


def test_without_a_live_database_it_states_the_risk(sqlite_site) -> None:
    site = sqlite_site
    site.manage("shell", "-c", WORK)
    backup = site.backup()
    site.sqlite_path.unlink()

    restored = site.manage("restore_db", str(backup), "--yes")

    assert _line(restored.stdout, "WARN Sent after the backup:").startswith(
        "WARN Sent after the backup: 3 queued or sending recipient(s) may have been sent after 20"
    )
    assert "unknown as there is no live database file (#1 'Spring reconnect': 3)" in (
        restored.stdout
    )
    assert "1 connected artist(s) may have had their refresh token rotated after" in _line(
        restored.stdout, "WARN SumUp refresh tokens:"
    )
    assert "campaign Spring reconnect paused" in _state(site)


def test_it_refuses_tokens_the_configured_keys_cannot_decrypt(site) -> None:
    old_key = os.environ[crypto.KEYS_VARIABLE]
    backup = site.backup()
    site.change_data()
    changed = site.data()

    refused = site.manage(
        "restore_db",
        str(backup),
        "--yes",
        env={crypto.KEYS_VARIABLE: OTHER_TOKEN_KEY},
        ok=False,
    )

    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "CommandError: Refusing to restore: 1 of 1 artist(s) in the backup hold SumUp tokens "
        f"that no key in SUMUP_TOKEN_KEYS decrypts; the backup was taken with key(s) "
        f"{_fingerprint(old_key)}, not configured; add the key(s) to SUMUP_TOKEN_KEYS after "
        "the current ones, or pass --allow-undecryptable-tokens"
    )
    assert old_key not in refused.stdout + refused.stderr
    assert refused.stdout == ""
    assert site.data() == changed


def test_it_restores_undecryptable_tokens_only_when_told_to(site) -> None:
    before = site.data()
    backup = site.backup()
    site.change_data()

    restored = site.manage(
        "restore_db",
        str(backup),
        "--yes",
        "--allow-undecryptable-tokens",
        env={crypto.KEYS_VARIABLE: OTHER_TOKEN_KEY},
    )

    assert site.data() == before
    assert _line(restored.stdout, "WARN Token keys:").startswith(
        "WARN Token keys: 1 of 1 artist(s) in the backup hold SumUp tokens that no key in "
        "SUMUP_TOKEN_KEYS decrypts"
    )
    assert "those artists must reconnect" in restored.stdout


def test_a_key_rotated_in_after_the_backup_still_opens_its_tokens(site) -> None:
    old_key = os.environ[crypto.KEYS_VARIABLE]
    backup = site.backup()

    restored = site.manage(
        "restore_db",
        str(backup),
        "--yes",
        env={crypto.KEYS_VARIABLE: f"{OTHER_TOKEN_KEY},{old_key}"},
    )

    assert (
        "OK   Token keys: the SumUp tokens of all 1 connected artist(s) decrypt with "
        "SUMUP_TOKEN_KEYS" in restored.stdout
    )
