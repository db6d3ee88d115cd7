"""Start and cancel ask first and say what they would do, in numbers counted now; only
the POST of that page, with its CSRF token, acts. Pause and resume act at once and say
what they did. A change the campaign's status does not allow is refused with a message,
never an error page."""

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from campaigns import services
from campaigns.models import Campaign, CampaignAction, Recipient, Suppression

if TYPE_CHECKING:
    from tests.support.campaigns import admin_url, draft
else:
    from support.campaigns import admin_url, draft

pytestmark = pytest.mark.django_db
S = Recipient.Status


def said(response) -> str:
    """The message the request left for the next page (the latest: a test's requests
    show no page in between, which would take the earlier ones)."""
    return [str(message) for message in get_messages(response.wsgi_request)][-1]


def mark_sent(campaign: Campaign, n: int) -> None:
    ids = list(campaign.recipients.filter(status=S.QUEUED).values_list("pk", flat=True)[:n])
    now = timezone.now()
    Recipient.objects.filter(pk__in=ids).update(
        status=S.SENT, claimed_at=now, sent_at=now, message_id="m"
    )


def test_it_asks_before_starting_with_the_emails_the_time_and_who_is_skipped(
    client, staff, artists
):
    artists(24)
    (suppressed,) = artists(1)
    Suppression.objects.create(email=suppressed.user.email, reason=Suppression.Reason.MANUAL)
    artists(2, sumup_lapse_notified_at=timezone.now() - timedelta(days=1))
    campaign = draft(rate_limit="1/s")
    client.force_login(staff("start_campaign"))

    page = client.get(admin_url("start", campaign.pk))

    assert page.status_code == 200
    # 24 sends, each 1.035 s apart at 1/s (the dispatcher's spacing): about 24 s.
    assert "Send 24 emails over about 24 s (rate limit 1/s)?" in page.text
    assert "Skipped: 1 suppressed" in page.text and "and 2 already notified" in page.text
    assert 'value="Yes, send 24 emails"' in page.text
    assert re.search(r'<form method="post">', page.text), "the page posts back to itself"
    campaign.refresh_from_db()
    assert campaign.status == "draft" and not campaign.recipients.exists()
    assert not campaign.actions.filter(action=CampaignAction.Action.STARTED).exists()


def test_it_says_when_a_start_has_no_rate_limit_or_no_one_to_email(client, staff, artists):
    client.force_login(staff("start_campaign"))
    nobody = draft(rate_limit="10/s")
    assert "No artist would be emailed now" in client.get(admin_url("start", nobody.pk)).text

    artists(3)
    unlimited = draft(name="Unlimited", rate_limit="")
    page = client.get(admin_url("start", unlimited.pk)).text
    assert "Send 3 emails with no rate limit, as fast as the workers go?" in page


def test_it_starts_only_on_a_post_with_the_csrf_token_and_says_what_happened(staff, artists):
    artists(3)
    campaign = draft(rate_limit="10/s")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff("start_campaign"))
    page = browser.get(admin_url("start", campaign.pk))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None

    forged = browser.post(admin_url("start", campaign.pk))
    assert forged.status_code == 403
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"

    confirmed = browser.post(
        admin_url("start", campaign.pk), {"csrfmiddlewaretoken": token.group(1)}
    )

    assert confirmed.status_code == 302
    assert confirmed["Location"] == admin_url("progress", campaign.pk)
    assert said(confirmed) == "Started: 3 emails queued (10/s); 0 skipped."
    campaign.refresh_from_db()
    assert campaign.status == "running" and campaign.counts()["queued"] == 3


def test_it_asks_before_cancelling_with_what_will_never_be_sent_and_what_stays_sent(
    client, staff, artists, started
):
    artists(5)
    campaign = started(rate_limit="10/s")
    mark_sent(campaign, 2)
    client.force_login(staff("cancel_campaign"))

    page = client.get(admin_url("cancel", campaign.pk))

    assert page.status_code == 200
    assert "Cancel? 3 emails not yet sent will never be sent; 2 already sent stay sent." in (
        page.text
    )
    assert 'value="Yes, cancel the campaign"' in page.text
    assert Campaign.objects.get(pk=campaign.pk).status == "running"

    done = client.post(admin_url("cancel", campaign.pk))

    assert said(done) == "Cancelled: 2 sent stay sent; no other email of this campaign will go out."
    assert Campaign.objects.get(pk=campaign.pk).status == "cancelled"
    counts = campaign.counts()
    assert (counts["sent"], counts["skipped"], counts["queued"]) == (2, 3, 0)


def test_it_says_a_send_in_flight_may_still_go_out_when_cancelling(client, staff, artists, started):
    artists(2)
    campaign = started()
    campaign.recipients.filter(pk=campaign.recipients.earliest("pk").pk).update(status=S.SENDING)
    client.force_login(staff("cancel_campaign"))

    page = client.get(admin_url("cancel", campaign.pk)).text

    assert "Cancel? 1 email not yet sent will never be sent; 0 already sent stay sent." in page
    assert "1 email being sent this moment may still go out." in page


def test_it_refuses_a_change_the_status_does_not_allow_with_a_message(
    client, staff, artists, started
):
    artists(2)
    campaign = started()
    client.force_login(staff("start_campaign", "cancel_campaign"))

    again = client.post(admin_url("start", campaign.pk))
    asked = client.get(admin_url("start", campaign.pk))
    resumed = client.post(admin_url("resume", campaign.pk))

    assert (again.status_code, asked.status_code, resumed.status_code) == (302, 302, 302)
    assert said(again) == "Only a draft campaign can be started. This one is running."
    assert said(asked) == "“Reconnect” is running: it cannot be started."
    assert said(resumed) == "Only a paused campaign can be resumed. This one is running."
    assert campaign.actions.filter(user__isnull=False).count() == 0

    client.post(admin_url("cancel", campaign.pk))
    twice = client.post(admin_url("cancel", campaign.pk))
    assert (
        said(twice)
        == "Only a draft or running or paused campaign can be cancelled. This one is cancelled."
    )
    assert campaign.actions.filter(action=CampaignAction.Action.CANCELLED).count() == 1
    followed = client.get(admin_url("cancel", campaign.pk), follow=True)
    assert "“Reconnect” is cancelled: it cannot be cancelled." in followed.text


def test_it_never_cancels_the_standing_campaign_and_says_why(client, staff):
    standing = services.standing_campaign()
    client.force_login(staff("cancel_campaign"))

    asked = client.get(admin_url("cancel", standing.pk))
    posted = client.post(admin_url("cancel", standing.pk))

    assert asked.status_code == 302 and "it cannot be cancelled" in said(asked)
    assert (
        said(posted)
        == "The standing campaign of the token refresh can only be paused. This one is running."
    )
    assert Campaign.objects.get(pk=standing.pk).status == "running"


def test_it_answers_not_found_for_a_campaign_that_does_not_exist(client, staff):
    client.force_login(staff("start_campaign", "cancel_campaign"))

    for button in ("start", "pause", "resume", "cancel"):
        assert client.post(admin_url(button, 999999)).status_code == 404
    assert client.get(admin_url("cancel", 999999)).status_code == 404


def test_it_pauses_and_resumes_at_once_on_a_post_only_and_says_what_happened(
    client, staff, artists, started
):
    artists(3)
    campaign = started()
    client.force_login(staff("start_campaign"))

    assert client.get(admin_url("pause", campaign.pk)).status_code == 405
    assert Campaign.objects.get(pk=campaign.pk).status == "running"
    paused = client.post(admin_url("pause", campaign.pk))
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"
    resumed = client.post(admin_url("resume", campaign.pk))

    assert (
        said(paused) == "Paused: no email goes out until the campaign is resumed; 3 not yet sent."
    )
    assert said(resumed) == "Resumed: 3 emails left to send."
    assert Campaign.objects.get(pk=campaign.pk).status == "running"


def test_it_shows_a_confirmation_only_to_whoever_may_make_the_change(
    client, staff, artists, started
):
    artists(1)
    waiting = draft()
    sending = started(name="Sending")

    client.force_login(staff())
    assert client.get(admin_url("start", waiting.pk)).status_code == 403
    assert client.get(admin_url("cancel", sending.pk)).status_code == 403
    client.force_login(staff("start_campaign"))
    assert client.get(admin_url("start", waiting.pk)).status_code == 200
    assert client.get(admin_url("cancel", sending.pk)).status_code == 403
    client.force_login(staff("cancel_campaign"))
    assert client.get(admin_url("cancel", sending.pk)).status_code == 200
    assert Campaign.objects.get(pk=sending.pk).status == "running"
