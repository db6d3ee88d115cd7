"""One payload for a campaign's progress: the page's first render, its poll
(progress.json) and the admin's list all show the same fields, for a draft, a running,
a stalled, a paused, a finished and a cancelled campaign; and only the changes the
campaign's status allows, that the reader may make, are offered."""

import html
import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.utils import timezone

from campaigns import dispatch, services
from campaigns.models import Campaign, Recipient, Suppression
from campaigns.progress import progress

if TYPE_CHECKING:
    from tests.support.campaigns import admin_url, draft, one_of_each_outcome
else:
    from support.campaigns import admin_url, draft, one_of_each_outcome

pytestmark = pytest.mark.django_db
S = Recipient.Status
FIELD = re.compile(r'<(\w+)[^>]*\bdata-field="(\w+)"[^>]*>(.*?)</\1>', re.DOTALL)
BUTTON = re.compile(r'<(?:a|form)\b[^>]*\bdata-action="(\w+)"[^>]*>')
BAR = re.compile(r'<progress id="p-bar"[^>]*>')


def in_status(status: str, started) -> Campaign:
    """A campaign of two recipients moved to `status` through the services."""
    if status == "draft":
        return draft()
    campaign = started()
    if status == "paused":
        services.pause(campaign.pk, actor="test")
    elif status == "cancelled":
        services.cancel(campaign.pk, actor="test")
    elif status == "done":
        finish(campaign)
    return Campaign.objects.get(pk=campaign.pk)


def finish(campaign: Campaign) -> None:
    now = timezone.now()
    campaign.recipients.update(status=S.SENT, claimed_at=now, sent_at=now, message_id="m")
    assert dispatch.finish(campaign.pk)


def offered(page: str) -> list[str]:
    """The buttons the page shows (a hidden one is not offered)."""
    return [match.group(1) for match in BUTTON.finditer(page) if " hidden" not in match.group(0)]


def bar_of(page: str) -> str:
    found = BAR.search(page)
    assert found is not None, "the page has its bar, shown or hidden"
    return found.group(0)


def rendered(page: str) -> dict[str, str]:
    return {name: html.unescape(text) for _, name, text in FIELD.findall(page)}


@pytest.mark.parametrize(
    ("status", "allowed"),
    [
        ("draft", ["start", "cancel"]),
        ("running", ["pause", "cancel"]),
        ("paused", ["resume", "cancel"]),
        ("done", []),
        ("cancelled", []),
    ],
)
def test_it_offers_only_the_changes_the_status_allows(
    status, allowed, client, staff, artists, started
):
    artists(2)
    campaign = in_status(status, started)
    client.force_login(staff("start_campaign", "cancel_campaign"))

    data = client.get(admin_url("progress_json", campaign.pk)).json()
    page = client.get(admin_url("progress", campaign.pk)).text

    assert data["actions"] == allowed
    assert offered(page) == allowed


def test_it_offers_only_the_changes_the_reader_may_make(client, staff, artists, started):
    artists(1)
    campaign = started()
    cases = [((), []), (("start_campaign",), ["pause"]), (("cancel_campaign",), ["cancel"])]

    for codenames, expected in cases:
        client.force_login(staff(*codenames))
        page = client.get(admin_url("progress", campaign.pk)).text
        assert client.get(admin_url("progress_json", campaign.pk)).json()["actions"] == expected
        assert offered(page) == expected
        # A change the reader may not make is not even in the page, hidden.
        may = {"start_campaign": {"start", "pause", "resume"}, "cancel_campaign": {"cancel"}}
        present = set(BUTTON.findall(page))
        assert present == set().union(*(may[name] for name in codenames))


def test_it_never_offers_to_cancel_the_standing_campaign(client, staff):
    standing = services.standing_campaign()
    client.force_login(staff("start_campaign", "cancel_campaign"))

    assert client.get(admin_url("progress_json", standing.pk)).json()["actions"] == ["pause"]


def test_a_draft_says_whom_it_would_email_with_no_bar_and_no_eta(client, staff, artists):
    artists(3)
    campaign = draft()
    client.force_login(staff())

    data = client.get(admin_url("progress_json", campaign.pk)).json()
    page = client.get(admin_url("progress", campaign.pk)).text

    assert data["state"] == "Draft — not started; 3 artists would be emailed"
    assert (data["bar"], data["bar_text"], data["eta_seconds"], data["eta_text"]) == (
        None,
        "",
        None,
        "—",
    )
    assert (data["would_email"], data["live"]) == (3, False)
    assert " hidden" in bar_of(page)
    assert "0 s" not in rendered(page)["eta_text"]
    artists(1, is_approved=False)  # not in an approved-only audience
    Campaign.objects.filter(pk=campaign.pk).update(approved_only=False)
    assert progress(Campaign.objects.get(pk=campaign.pk)).state == (
        "Draft — not started; 4 artists would be emailed"
    )


def test_a_running_campaign_shows_its_counts_rate_pace_eta_and_bar(artists, started):
    artists(6)
    campaign = started(rate_limit="10/s")
    now = timezone.now()
    one_of_each_outcome(campaign, now)

    data = progress(campaign, now=now).as_dict()

    assert data["state"] == "Running" and data["live"] is True
    assert (data["sent"], data["failed"], data["unknown"], data["remaining"]) == (2, 1, 1, 2)
    # Four of six done: two thirds, rounded down.
    assert (data["bar"], data["bar_text"]) == (0.6666, "66% done")
    assert (data["rate_text"], data["pace_text"], data["eta_text"]) == (
        "0.2/s",
        "0.4 done/s",
        "about 5 s",
    )


def test_the_bar_counts_the_emails_to_send_not_the_recipients_skipped(artists, started):
    artists(3)
    (suppressed,) = artists(1)
    Suppression.objects.create(email=suppressed.user.email, reason=Suppression.Reason.MANUAL)
    campaign = started()
    first = campaign.recipients.filter(status=S.QUEUED).earliest("pk")
    now = timezone.now()
    Recipient.objects.filter(pk=first.pk).update(status=S.SENT, claimed_at=now, sent_at=now)

    data = progress(campaign).as_dict()

    assert (data["total"], data["skipped"], data["sent"]) == (4, 1, 1)
    assert (data["bar"], data["bar_text"]) == (0.3333, "33% done")


def test_a_stalled_campaign_says_for_how_long_with_no_eta_and_its_bar_as_far_as_it_got(
    artists, started, settings
):
    settings.CAMPAIGNS_RECOVER_INTERVAL = 60
    artists(4)
    campaign = started(rate_limit="10/s")
    moved = campaign.started_at + timedelta(seconds=5)
    one = campaign.recipients.earliest("pk")
    Recipient.objects.filter(pk=one.pk).update(
        status=S.SENT, claimed_at=moved, sent_at=moved, updated_at=moved
    )
    Recipient.objects.exclude(pk=one.pk).update(updated_at=campaign.started_at)
    campaign.actions.update(at=campaign.started_at)

    data = progress(campaign, now=moved + timedelta(minutes=4, seconds=10)).as_dict()

    assert data["state"] == "Stalled — no progress for 4 min"
    assert (data["stalled"], data["eta_seconds"], data["eta_text"]) == (True, None, "—")
    assert (data["bar"], data["bar_text"], data["live"]) == (0.25, "25% done", True)


def test_a_finished_campaign_shows_finished_and_a_full_bar_with_no_eta(
    client, staff, artists, started
):
    artists(2)
    campaign = in_status("done", started)
    client.force_login(staff())

    data = client.get(admin_url("progress_json", campaign.pk)).json()

    assert (data["state"], data["bar"], data["bar_text"]) == ("Finished", 1.0, "100% done")
    assert (data["eta_text"], data["live"], data["actions"]) == ("—", False, [])


def test_a_paused_or_cancelled_campaign_shows_no_eta_and_a_cancelled_one_no_bar(artists, started):
    artists(2)
    paused = in_status("paused", started)
    cancelled = in_status("cancelled", started)

    now_paused, now_cancelled = progress(paused).as_dict(), progress(cancelled).as_dict()

    assert (now_paused["state"], now_paused["eta_text"], now_paused["bar"]) == ("Paused", "—", 0.0)
    assert now_paused["live"] is True
    assert (now_cancelled["state"], now_cancelled["bar"], now_cancelled["live"]) == (
        "Cancelled",
        None,
        False,
    )


@pytest.mark.parametrize("status", ["draft", "running", "paused", "done", "cancelled"])
def test_the_page_renders_exactly_the_payload_its_poll_serves(
    status, client, staff, artists, started
):
    artists(3)
    campaign = in_status(status, started)
    if status == "running":
        now = timezone.now()
        first = campaign.recipients.earliest("pk")
        Recipient.objects.filter(pk=first.pk).update(
            status=S.SENT, claimed_at=now, sent_at=now, updated_at=now
        )
    client.force_login(staff("start_campaign", "cancel_campaign"))

    with time_machine.travel(timezone.now(), tick=False):
        page = client.get(admin_url("progress", campaign.pk)).text
        data = client.get(admin_url("progress_json", campaign.pk)).json()

    fields = rendered(page)
    assert set(fields) == {
        "state",
        "bar_text",
        "sent",
        "failed",
        "skipped",
        "unknown",
        "remaining",
        "total",
        "rate_text",
        "pace_text",
        "eta_text",
    }
    assert {name: fields[name] for name in fields} == {name: str(data[name]) for name in fields}
    bar = bar_of(page)
    assert (" hidden" in bar) == (data["bar"] is None)
    value = re.search(r'value="([^"]+)"', bar)
    assert value is not None and float(value.group(1)) == (data["bar"] or 0)
    rows = re.findall(r'<th scope="row">(\w+)</th><td>(\d+)</td>', page)
    assert {name: int(n) for name, n in rows} == data["by_status"]
    assert offered(page) == data["actions"]
    assert f'data-live="{str(data["live"]).lower()}"' in page


def test_the_list_shows_the_same_state_and_progress_as_the_page(client, staff, artists, started):
    artists(4)
    waiting = draft(name="Waiting")
    sending = started(name="Sending")
    now = timezone.now()
    first = sending.recipients.earliest("pk")
    Recipient.objects.filter(pk=first.pk).update(
        status=S.SENT, claimed_at=now, sent_at=now, updated_at=now
    )
    done = started(name="Done")
    finish(done)
    client.force_login(staff())

    listing = client.get(admin_url("changelist")).text

    for campaign in (waiting, sending, done):
        state = client.get(admin_url("progress_json", campaign.pk)).json()["state"]
        assert state in listing
    assert "Draft — not started; 4 artists would be emailed" in listing
    assert "25% done · 1 sent, 0 failed, 0 unknown, 3 remaining" in listing
    assert "100% done · 4 sent, 0 failed, 0 unknown, 0 remaining" in listing
    assert ">Finished<" in listing
    finished_only = client.get(admin_url("changelist"), {"status": "done"}).text
    assert "Done</a>" in finished_only and "Waiting</a>" not in finished_only
    assert ">Finished</a>" in finished_only, "the filter says Finished, as the column does"
