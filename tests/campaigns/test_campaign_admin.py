"""Staff and campaigns in the admin: permissions for each change, the record of who did
what, the audience count, the preview for any artist, progress and the resend action."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from campaigns import services
from campaigns.models import Campaign, CampaignAction, Recipient

pytestmark = pytest.mark.django_db
S = Recipient.Status


@pytest.fixture
def staff():
    """`staff(*codenames)`: a logged-in-able staff user with these campaign permissions."""
    counter = iter(range(1, 1000))

    def make(*codenames: str) -> User:
        user = User.objects.create_user(f"staff{next(counter)}", password="x", is_staff=True)
        perms = Permission.objects.filter(
            content_type__app_label="campaigns", codename__in=["view_campaign", *codenames]
        )
        user.user_permissions.set(perms)
        return user

    return make


def admin_url(name: str, *args: object) -> str:
    return reverse(f"admin:campaigns_campaign_{name}", args=args)


def draft(**fields) -> Campaign:
    return services.create(Campaign(name="Reconnect", **fields), actor="test")


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
    client.force_login(staff())

    page = client.get(admin_url("preview", campaign.pk), {"artist": other.user.email})

    assert page.status_code == 200
    assert b"Hello Nina Blue," in page.content
    assert b"List-Unsubscribe-Post" in page.content
    assert b"connect your SumUp account" in page.content
    by_id = client.get(admin_url("preview", campaign.pk), {"artist": str(other.pk)})
    assert b"Hello Nina Blue," in by_id.content


def test_progress_reports_sent_failed_skipped_unknown_and_remaining(client, staff, artists):
    artists(5)
    campaign = draft()
    services.start(campaign.pk, actor="test")
    first, second, third, fourth, _ = campaign.recipients.all()
    Recipient.objects.filter(pk=first.pk).update(status=S.SENT, sent_at=timezone.now())
    Recipient.objects.filter(pk=second.pk).update(status=S.DELIVERED, sent_at=timezone.now())
    Recipient.objects.filter(pk=third.pk).update(status=S.FAILED)
    Recipient.objects.filter(pk=fourth.pk).update(status=S.UNKNOWN)
    client.force_login(staff())

    data = client.get(admin_url("progress_json", campaign.pk)).json()

    assert {k: data[k] for k in ("sent", "failed", "unknown", "remaining", "total")} == {
        "sent": 2,
        "failed": 1,
        "unknown": 1,
        "remaining": 1,
        "total": 5,
    }
    assert data["status"] == "running" and data["configured_rate"] == "10/s"
    # two sends in the last 10 s: 0.2/s, so the one remaining is due in 5 s
    assert (data["rate_per_second"], data["eta_seconds"]) == (0.2, 5)
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
