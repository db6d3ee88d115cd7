"""The public side of campaign emails: one-click unsubscribe (RFC 8058) and the
provider's tracking webhook, with what each does to recipients and later campaigns."""

import base64
import json

import pytest
from django.urls import reverse

from campaigns import sending, unsubscribe
from campaigns.models import Recipient, Suppression
from campaigns.sending import Step
from fakes.brevo import tracking_payload

pytestmark = pytest.mark.django_db
S = Recipient.Status
SECRET = "anymail:s3cret-webhook-password"


@pytest.fixture
def sent(esp, artists, started):
    """One artist, emailed by a campaign: (recipient row, the message at the fake)."""
    artists(1)
    recipient = started().recipients.get()
    assert sending.send_one(recipient.pk).step is Step.SENT
    recipient.refresh_from_db()
    return recipient, esp.state.accepted[0]


def link_in(message) -> str:
    return str(message.headers["List-Unsubscribe"]).split(",")[0].strip("<> ")


def path_of(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:8000")


def test_a_mail_clients_one_click_post_unsubscribes(client, sent):
    recipient, message = sent

    response = client.post(path_of(link_in(message)), {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    assert response.content == b"Unsubscribed.\n"
    assert Suppression.objects.get().email == recipient.email
    recipient.refresh_from_db()
    assert recipient.status == S.UNSUBSCRIBED


def test_a_person_sees_a_confirmation_first_and_a_get_unsubscribes_no_one(client, sent):
    recipient, message = sent
    url = path_of(link_in(message))

    page = client.get(url)
    assert page.status_code == 200
    assert b"Stop campaign emails" in page.content and recipient.email.encode() in page.content
    assert not Suppression.objects.exists()

    done = client.post(url)
    assert done.status_code == 200 and b"You are unsubscribed" in done.content
    assert client.get(url).content.count(b"You are unsubscribed") == 1
    assert Suppression.objects.get().reason == Suppression.Reason.UNSUBSCRIBED


def test_an_unsubscribed_artist_is_skipped_by_the_next_campaign(client, sent, started):
    recipient, message = sent
    client.post(path_of(link_in(message)), {"List-Unsubscribe": "One-Click"})

    later = started(include_notified=True).recipients.get()

    assert later.status == S.SKIPPED
    assert later.artist_id == recipient.artist_id


def test_a_forged_or_altered_unsubscribe_token_is_refused(client, sent):
    recipient, _ = sent
    token = unsubscribe.make_token(recipient.pk)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")

    for bad in (forged, "not-a-token"):
        url = reverse("campaigns:unsubscribe", args=[bad])
        assert client.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert not Suppression.objects.exists()


def post_event(client, payload, auth: str | None = SECRET):
    headers = {}
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return client.post(
        reverse("campaigns:tracking"),
        data=json.dumps(payload),
        content_type="application/json",
        **headers,
    )


@pytest.fixture
def webhook_secret(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}


def test_the_webhook_is_shut_without_a_secret_and_refuses_wrong_credentials(client, sent, settings):
    recipient, message = sent
    delivered = tracking_payload(message, "delivered")

    assert post_event(client, delivered).status_code == 403  # no ANYMAIL_WEBHOOK_SECRET yet
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    assert post_event(client, delivered, auth=None).status_code == 400
    assert post_event(client, delivered, auth="anymail:wrong").status_code == 400

    recipient.refresh_from_db()
    assert recipient.status == S.SENT


def test_a_delivered_event_marks_the_recipient_delivered(client, sent, webhook_secret):
    recipient, message = sent

    assert post_event(client, tracking_payload(message, "delivered")).status_code == 200

    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED and recipient.event_at is not None


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [("hard_bounce", S.BOUNCED, "bounced"), ("spam", S.COMPLAINED, "complained")],
)
def test_a_hard_bounce_or_complaint_suppresses_the_address_for_later_campaigns(
    client, sent, started, webhook_secret, event, status, reason
):
    recipient, message = sent

    assert post_event(client, tracking_payload(message, event)).status_code == 200

    recipient.refresh_from_db()
    assert recipient.status == status
    assert Suppression.objects.get(email=recipient.email).reason == reason
    assert started(include_notified=True).recipients.get().status == S.SKIPPED


def test_events_only_move_a_recipient_forward(client, sent, webhook_secret):
    recipient, message = sent
    post_event(client, tracking_payload(message, "hard_bounce"))
    post_event(client, tracking_payload(message, "delivered"))  # late and out of order

    recipient.refresh_from_db()
    assert recipient.status == S.BOUNCED


def test_a_soft_bounce_changes_nothing(client, sent, webhook_secret):
    recipient, message = sent

    assert post_event(client, tracking_payload(message, "soft_bounce")).status_code == 200

    recipient.refresh_from_db()
    assert recipient.status == S.SENT
    assert not Suppression.objects.exists()


def test_a_delivered_event_settles_a_recipient_whose_outcome_was_unknown(
    client, sent, webhook_secret
):
    recipient, message = sent
    Recipient.objects.filter(pk=recipient.pk).update(status=S.UNKNOWN)

    post_event(client, tracking_payload(message, "delivered"))

    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED


def test_an_event_for_an_earlier_notice_of_a_reused_row_is_ignored(client, sent, webhook_secret):
    recipient, message = sent
    Recipient.objects.filter(pk=recipient.pk).update(
        status=S.QUEUED, idempotency_key="00000000-0000-0000-0000-000000000001"
    )

    post_event(client, tracking_payload(message, "delivered"))

    recipient.refresh_from_db()
    assert recipient.status == S.QUEUED
