"""Staff and campaigns in the admin: permissions for each change, the record of who did
what, the audience count, the preview for any artist, progress (its ETA and stalls) and
the resend action."""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from campaigns import dispatch, services
from campaigns.models import Campaign, CampaignAction, Recipient
from campaigns.progress import progress, stall_after

if TYPE_CHECKING:
    from tests.support.campaigns import admin_url, draft, one_of_each_outcome
else:
    from support.campaigns import admin_url, draft, one_of_each_outcome

pytestmark = pytest.mark.django_db
S = Recipient.Status


def running(**fields) -> Campaign:
    campaign = draft(**fields)
    services.start(campaign.pk, actor="test")
    return Campaign.objects.get(pk=campaign.pk)


def send(campaign: Campaign, at: datetime, n: int = 1) -> None:
    """Record n of the campaign's queued recipients as sent at `at`, as a worker would."""
    ids = list(campaign.recipients.filter(status=S.QUEUED).values_list("pk", flat=True)[:n])
    Recipient.objects.filter(pk__in=ids).update(
        status=S.SENT, claimed_at=at, sent_at=at, updated_at=at, message_id="m"
    )


def test_creating_a_campaign_needs_the_add_permission_and_records_who(client, staff, artists):
    artists(2)
    form = {
        "name": "Autumn reconnect",
        "kind": "sumup_reconnect",
        "template": "accounts/email/sumup_reconnect",
        "approved_only": "on",
        "rate_limit": "10/s",
        "actions-TOTAL_FORMS": "0",
        "actions-INITIAL_FORMS": "0",
    }

    client.force_login(staff())
    assert client.post(admin_url("add"), form).status_code == 403
    assert not Campaign.objects.exists()

    author = staff("add_campaign")
    client.force_login(author)
    assert client.post(admin_url("add"), form).status_code == 302

    campaign = Campaign.objects.get()
    assert (campaign.status, campaign.created_by, campaign.rate_limit) == ("draft", author, "10/s")
    created = campaign.actions.get()
    assert (created.action, created.user, created.actor) == ("created", author, author.username)
    page = client.get(admin_url("change", campaign.pk))
    assert b"2 artist(s) would be emailed now" in page.content


def test_a_rate_that_is_not_a_rate_is_refused(client, staff):
    client.force_login(staff("add_campaign"))
    response = client.post(
        admin_url("add"),
        {
            "name": "x",
            "kind": "sumup_reconnect",
            "template": "accounts/email/sumup_reconnect",
            "rate_limit": "fast",
            "actions-TOTAL_FORMS": "0",
            "actions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200 and b"must look like 20/s" in response.content
    assert not Campaign.objects.exists()


def test_starting_needs_the_start_permission_and_is_recorded_with_the_user(
    client, staff, artists, django_capture_on_commit_callbacks
):
    artists(3)
    campaign = draft()

    client.force_login(staff())
    assert client.post(admin_url("start", campaign.pk)).status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == "draft" and not campaign.recipients.exists()

    starter = staff("start_campaign")
    client.force_login(starter)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(admin_url("start", campaign.pk))

    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.status, campaign.started_by) == ("running", starter)
    assert campaign.counts()["queued"] == 3
    assert len(queued) == 1, "the dispatch chain is queued after the commit"
    started = campaign.actions.get(action=CampaignAction.Action.STARTED)
    assert (started.user, started.detail) == (starter, "3 queued, 0 skipped, rate 10/s")


def test_cancelling_needs_its_own_permission(client, staff, artists):
    artists(2)
    campaign = draft()
    services.start(campaign.pk, actor="test")

    client.force_login(staff("start_campaign"))
    assert client.post(admin_url("cancel", campaign.pk)).status_code == 403
    assert Campaign.objects.get(pk=campaign.pk).status == "running"

    canceller = staff("cancel_campaign")
    client.force_login(canceller)
    client.post(admin_url("cancel", campaign.pk))

    campaign.refresh_from_db()
    assert campaign.status == "cancelled"
    assert campaign.counts()["skipped"] == 2
    assert campaign.actions.get(action="cancelled").user == canceller


def test_pause_and_resume_are_recorded_and_a_wrong_move_is_refused(client, staff, artists):
    artists(1)
    campaign = draft()
    services.start(campaign.pk, actor="test")
    user = staff("start_campaign")
    client.force_login(user)

    client.post(admin_url("pause", campaign.pk))
    refused = client.post(admin_url("pause", campaign.pk), follow=True)
    client.post(admin_url("resume", campaign.pk))

    assert b"Only a running campaign can be paused." in refused.content
    assert list(campaign.actions.filter(user=user).values_list("action", flat=True)) == [
        "paused",
        "resumed",
    ]
    assert Campaign.objects.get(pk=campaign.pk).status == "running"


def test_the_preview_shows_the_email_as_any_artist_would_get_it(client, staff, make_artist):
    make_artist(is_approved=True, display_name="First Artist")
    other = make_artist(is_approved=True, display_name="Nina Blue")
    campaign = draft()
    previewer = staff()
    # The preview shows an artist's address and SumUp status: it needs the artists' view.
    client.force_login(previewer)
    assert client.get(admin_url("preview", campaign.pk)).status_code == 403
    previewer.user_permissions.add(Permission.objects.get(codename="view_artistprofile"))

    page = client.get(admin_url("preview", campaign.pk), {"artist": other.user.email})

    assert page.status_code == 200
    assert b"Hello Nina Blue," in page.content
    assert b"List-Unsubscribe-Post" in page.content
    assert b"/email/unsubscribe/sample-from-a-preview-unsubscribes-no-one/" in page.content
    assert b"connect your SumUp account" in page.content
    by_id = client.get(admin_url("preview", campaign.pk), {"artist": str(other.pk)})
    assert b"Hello Nina Blue," in by_id.content


def test_progress_reports_sent_failed_skipped_unknown_and_remaining(client, staff, artists):
    artists(6)
    campaign = draft()
    services.start(campaign.pk, actor="test")
    one_of_each_outcome(campaign, timezone.now())
    client.force_login(staff())

    data = client.get(admin_url("progress_json", campaign.pk)).json()

    assert {k: data[k] for k in ("sent", "failed", "unknown", "remaining", "total")} == {
        "sent": 2,
        "failed": 1,
        "unknown": 1,
        "remaining": 2,
        "total": 6,
    }
    assert data["status"] == "running" and data["configured_rate"] == "10/s"
    assert (data["state"], data["stalled"], data["no_progress_seconds"]) == ("Running", False, None)
    # Two sends in the last 10 s: 0.2/s. Four recipients done within the first 10 s
    # (the shortest span the pace is taken over): 0.4/s, so the two left take 5 s.
    assert (data["rate_per_second"], data["done_per_second"], data["eta_seconds"]) == (0.2, 0.4, 5)
    page = client.get(admin_url("progress", campaign.pk))
    assert page.status_code == 200 and b"Recipients whose outcome is unknown" in page.content


def test_the_resend_action_needs_its_permission_and_touches_only_unknown_outcomes(
    client, staff, artists
):
    artists(2)
    campaign = draft()
    services.start(campaign.pk, actor="test")
    unknown, sent = campaign.recipients.all()
    Recipient.objects.filter(pk=unknown.pk).update(status=S.UNKNOWN)
    Recipient.objects.filter(pk=sent.pk).update(status=S.SENT)
    changelist = reverse("admin:campaigns_recipient_changelist")
    action = {"action": "resend", "_selected_action": [unknown.pk, sent.pk]}

    viewer = staff("view_recipient")
    client.force_login(viewer)
    client.post(changelist, action)
    assert Recipient.objects.get(pk=unknown.pk).status == S.UNKNOWN

    resender = staff("view_recipient", "resend_recipient")
    client.force_login(resender)
    client.post(changelist, action)

    assert Recipient.objects.get(pk=unknown.pk).status == S.QUEUED
    assert Recipient.objects.get(pk=sent.pk).status == S.SENT
    assert campaign.actions.get(action="resent").user == resender


def test_the_eta_comes_from_the_pace_observed_since_the_last_start_not_the_configured_rate(
    artists,
):
    artists(20)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        campaign = running(rate_limit="10/s")
        start = timezone.now()
        for second in (5, 10, 15, 20, 25, 30):
            send(campaign, start + timedelta(seconds=second))
        traveller.shift(timedelta(seconds=30))
        # 6 done in the 30 s since the start: 0.2/s for the 14 left (10/s would say 1 s).
        now = progress(campaign)
        assert (now.done_per_second, now.eta_seconds) == (0.2, 70)

        services.pause(campaign.pk, actor="test")
        traveller.shift(timedelta(minutes=10))
        services.resume(campaign.pk, actor="test")
        resumed = timezone.now()
        send(campaign, resumed + timedelta(seconds=5))
        send(campaign, resumed + timedelta(seconds=15))
        traveller.shift(timedelta(seconds=20))
        # Paced from the resume (2 in 20 s), not dragged down by the ten paused minutes.
        now = progress(Campaign.objects.get(pk=campaign.pk))
        assert (now.done_per_second, now.eta_seconds) == (0.1, 120)


def test_a_draft_a_paused_or_a_finished_campaign_has_no_eta(artists):
    artists(2)
    assert progress(draft()).eta_seconds is None

    paused = running()
    send(paused, timezone.now())
    services.pause(paused.pk, actor="test")
    assert progress(Campaign.objects.get(pk=paused.pk)).eta_seconds is None

    finished = running(name="Finished")
    send(finished, timezone.now(), n=2)
    assert dispatch.finish(finished.pk)
    done = progress(Campaign.objects.get(pk=finished.pk))
    assert (done.status, done.remaining, done.eta_seconds) == ("done", 0, None)


def test_a_campaign_without_progress_past_the_recovery_interval_shows_stalled_with_no_eta(
    client, staff, artists, settings
):
    settings.CAMPAIGNS_RECOVER_INTERVAL = 60
    artists(4)
    client.force_login(staff())
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        stuck = running(name="Stuck")
        send(stuck, timezone.now() + timedelta(seconds=5))
        healthy = running(name="Healthy")
        traveller.shift(timedelta(minutes=4))
        send(healthy, timezone.now() - timedelta(seconds=5))

        listing = client.get(admin_url("changelist")).text
        stuck_now = client.get(admin_url("progress_json", stuck.pk)).json()
        healthy_now = client.get(admin_url("progress_json", healthy.pk)).json()
        change_page = client.get(admin_url("change", stuck.pk)).text
        progress_page = client.get(admin_url("progress", stuck.pk)).text

    stalled = "Stalled — no progress for 3 min"  # 3 min 55 s since its last send
    assert listing.count(stalled) == 1 and stalled in change_page and stalled in progress_page
    assert {k: stuck_now[k] for k in ("stalled", "no_progress_seconds", "eta_seconds")} == {
        "stalled": True,
        "no_progress_seconds": 235,
        "eta_seconds": None,
    }
    assert stuck_now["state"] == stalled and stuck_now["status"] == "running"
    assert (healthy_now["state"], healthy_now["stalled"]) == ("Running", False)
    assert healthy_now["eta_seconds"] is not None


def test_a_campaign_is_stalled_only_past_the_interval_and_with_sends_due(artists, settings):
    artists(2)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        campaign = running(rate_limit="10/s")
        traveller.shift(timedelta(minutes=2))

        settings.CAMPAIGNS_RECOVER_INTERVAL = 180
        assert not progress(campaign).stalled
        settings.CAMPAIGNS_RECOVER_INTERVAL = 60
        assert progress(campaign).stalled

        # Every send left waits out a retry backoff: waiting, not stalled.
        campaign.recipients.update(next_attempt_at=timezone.now() + timedelta(minutes=1))
        assert not progress(campaign).stalled

    # A slow rate is given a few of its send intervals (3 at 97% of 1/min: over 3 min).
    assert stall_after(Campaign(rate_limit="1/m")) > timedelta(minutes=3)
    assert stall_after(Campaign(rate_limit="10/s")) == timedelta(seconds=60)


def test_recovery_hands_out_again_exactly_the_campaigns_the_admin_shows_stalled(
    artists, settings, django_capture_on_commit_callbacks
):
    settings.CAMPAIGNS_RECOVER_INTERVAL = 60
    artists(3)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        stuck = running(name="Stuck")
        healthy = running(name="Healthy")
        # Both chains look alive and every send was just handed out: nothing but the
        # stall tells that the stuck one's sends went with a worker.
        Recipient.objects.update(dispatched_at=timezone.now())
        traveller.shift(timedelta(seconds=90))
        Campaign.objects.update(dispatch_heartbeat=timezone.now(), dispatch_token="alive")
        Recipient.objects.update(dispatched_at=timezone.now())
        send(healthy, timezone.now() - timedelta(seconds=10))
        assert progress(stuck).stalled and not progress(healthy).stalled

        with django_capture_on_commit_callbacks() as queued:
            report = dispatch.recover()

    assert (report.unstalled, report.kicked, report.redispatched) == ([stuck.pk], [], 0)
    assert len(queued) == 1, "one new dispatch chain, for the stuck campaign"
    assert not stuck.recipients.exclude(dispatched_at=None).exists()
    assert healthy.recipients.filter(status=S.QUEUED).exclude(dispatched_at=None).count() == 2
    stuck.refresh_from_db()
    assert stuck.dispatch_token != "alive"
    recovered = stuck.actions.get(action=CampaignAction.Action.RECOVERED)
    assert recovered.detail == (
        "no progress for 1 min: 3 send(s) handed out again by a new dispatch chain"
    )
    assert not healthy.actions.filter(action=CampaignAction.Action.RECOVERED).exists()
