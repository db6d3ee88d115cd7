"""What a campaign email exposes and what can be done with it.

- The tracking webhook moves a recipient only for an event carrying both its id and its
  send key, and suppresses that recipient's own address, whatever address the event names.
- An unsubscribe link names the recipient row, never the address, and works for 180
  days after it was made, then no longer.
- `List-Unsubscribe` reaches the wire as plain `<URL>` targets on Django's SMTP and
  console backends, never RFC 2047 encoded words, however long the link.
"""

import base64
import email
import email.policy
import io
import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from django.core import signing
from django.core.mail.backends.console import EmailBackend as ConsoleBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ArtistProfile
from campaigns import messages, services, unsubscribe
from campaigns.models import Campaign, Recipient, Suppression
from fakes.brevo import FakeBrevo

if TYPE_CHECKING:
    from tests.support.fake_smtp import FakeSmtp
else:
    from support.fake_smtp import FakeSmtp

pytestmark = pytest.mark.django_db

S = Recipient.Status
WEBHOOK_LOGIN = "anymail:webhook-password-for-this-test"
UNSUBSCRIBE_EMAIL = "unsubscribe@jerseyevents.test"


@pytest.fixture
def recipient(make_artist: Any) -> Recipient:
    """A recipient of a started campaign (its send is queued, never sent here)."""
    make_artist(is_approved=True)
    campaign = services.create(Campaign(name="Reconnect", rate_limit=""), actor="test")
    services.start(campaign.pk, actor="test")
    row: Recipient = Campaign.objects.get(pk=campaign.pk).recipients.get()
    return row


@pytest.fixture
def webhook(settings: Any) -> None:
    settings.EMAIL_BACKEND = FakeBrevo.BACKEND
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": [WEBHOOK_LOGIN]}


def post_event(client: Client, event: str, address: str, metadata: dict[str, str]) -> int:
    """Brevo's tracking post, as the provider sends it, with the webhook's login."""
    payload = {
        "event": event,
        "email": address,
        "message-id": "<not-a-message-we-sent@smtp-relay.example>",
        "ts_epoch": int(timezone.now().timestamp() * 1000),
        "X-Mailin-custom": json.dumps(metadata),
    }
    login = base64.b64encode(WEBHOOK_LOGIN.encode()).decode()
    response = client.post(
        reverse("campaigns:tracking"),
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {login}",
    )
    return response.status_code


@pytest.mark.parametrize(
    "send_key",
    [None, "", "not-a-uuid", "00000000-0000-0000-0000-000000000001"],
    ids=["missing", "empty", "malformed", "another"],
)
def test_an_event_with_the_id_but_not_the_send_key_changes_nothing(
    client, recipient, webhook, send_key
):
    metadata = {"campaign_recipient_id": str(recipient.pk)}
    if send_key is not None:
        metadata["campaign_send_key"] = send_key

    assert post_event(client, "hard_bounce", recipient.email, metadata) == 200

    assert Recipient.objects.get(pk=recipient.pk).status == S.QUEUED
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("event", ["hard_bounce", "spam", "unsubscribe"])
def test_an_event_suppresses_its_recipients_address_not_the_one_it_names(
    client, recipient, webhook, event
):
    metadata = {
        "campaign_recipient_id": str(recipient.pk),
        "campaign_send_key": str(recipient.idempotency_key),
    }

    assert post_event(client, event, "someone.else@example.com", metadata) == 200

    assert list(Suppression.objects.values_list("email", flat=True)) == [recipient.email]
    assert Recipient.objects.get(pk=recipient.pk).status != S.QUEUED


@pytest.mark.parametrize(
    "authorization",
    ["Basic " + base64.b64encode("anymail:mot-de-passe-é".encode()).decode(), "Basic é", "Basic"],
)
def test_a_webhook_login_of_any_form_is_refused_without_a_server_error(
    client, recipient, webhook, authorization
):
    response = client.post(
        reverse("campaigns:tracking"),
        data="[]",
        content_type="application/json",
        HTTP_AUTHORIZATION=authorization,
    )

    assert response.status_code == 400
    assert Recipient.objects.get(pk=recipient.pk).status == S.QUEUED


def test_an_unsubscribe_link_names_the_row_and_never_the_address(recipient):
    url = unsubscribe.unsubscribe_url(recipient.pk)
    token = url.rstrip("/").rsplit("/", 1)[1]

    assert signing.loads(token, salt=unsubscribe.SALT) == {"r": recipient.pk}
    assert recipient.email not in url


def test_an_unsubscribe_link_works_for_180_days_and_then_no_longer(client, recipient):
    made = timezone.now()
    with time_machine.travel(made, tick=False):
        link = reverse("campaigns:unsubscribe", args=[unsubscribe.make_token(recipient.pk)])

    with time_machine.travel(made + timedelta(days=181)):
        expired = client.post(link, {"List-Unsubscribe": "One-Click"})
    assert expired.status_code == 404
    assert b"This link does not work" in expired.content
    assert not Suppression.objects.exists()

    with time_machine.travel(made + timedelta(days=179)):
        page = client.get(link)
        one_click = client.post(link, {"List-Unsubscribe": "One-Click"})
    assert page.status_code == 200 and recipient.email.encode() in page.content
    assert one_click.status_code == 200 and one_click.content == b"Unsubscribed.\n"
    assert Suppression.objects.get().email == recipient.email
    assert unsubscribe.UNSUBSCRIBE_LINK_MAX_AGE == 180 * 24 * 3600


def test_a_link_to_a_row_that_is_gone_unsubscribes_no_one(client, recipient):
    link = reverse("campaigns:unsubscribe", args=[unsubscribe.make_token(recipient.pk)])
    Campaign.objects.filter(pk=recipient.campaign_id).delete()

    assert client.post(link, {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert not Suppression.objects.exists()


def _message(recipient: Recipient) -> Any:
    assert recipient.artist_id is not None
    profile = ArtistProfile.objects.get(pk=recipient.artist_id)
    return messages.build(Campaign.objects.get(pk=recipient.campaign_id), profile, recipient)


def _header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n", 1)[0].decode("ascii")


def _assert_plain_list_unsubscribe(raw: bytes, recipient: Recipient) -> None:
    headers = _header_block(raw)
    assert "=?" not in headers, headers
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    link, mailto = str(parsed["List-Unsubscribe"]).split(", ")
    assert re.fullmatch(r"<http://127\.0\.0\.1:8000/email/unsubscribe/[\w:.-]+/>", link)
    assert mailto == f"<mailto:{UNSUBSCRIBE_EMAIL}?subject=unsubscribe>"
    assert f"List-Unsubscribe: {link}," in headers.replace("\r\n", "\n").splitlines()
    token = link.removesuffix("/>").rsplit("/", 1)[1]
    assert unsubscribe.read_token(token) == unsubscribe.Subscriber(recipient.email, recipient.pk)
    assert str(parsed["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"


def test_list_unsubscribe_goes_over_smtp_unencoded(recipient, settings):
    settings.UNSUBSCRIBE_EMAIL = UNSUBSCRIBE_EMAIL
    message = _message(recipient)
    assert len(f"List-Unsubscribe: <{unsubscribe.unsubscribe_url(recipient.pk)}>") > 78

    with FakeSmtp() as smtp:
        SmtpBackend(host="127.0.0.1", port=smtp.port, timeout=10).send_messages([message])

    [raw] = smtp.messages
    _assert_plain_list_unsubscribe(raw, recipient)


def test_list_unsubscribe_is_printed_unencoded_by_the_console_backend(recipient, settings):
    settings.UNSUBSCRIBE_EMAIL = UNSUBSCRIBE_EMAIL
    stream = io.StringIO()

    ConsoleBackend(stream=stream).send_messages([_message(recipient)])

    printed = stream.getvalue().split("-" * 79)[0].encode("ascii")
    _assert_plain_list_unsubscribe(printed, recipient)
