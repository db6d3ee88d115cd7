"""A send whose worker died after claiming it, settled by beat's recovery with the fake
Brevo's log over HTTP: sent if the provider took it, sent again under the same
idempotency key if it did not, `unknown` only when that cannot be known in time."""

import logging
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import ArtistProfile
from campaigns import dispatch, messages, provider, reconcile, sending
from campaigns.models import Campaign, CampaignAction, Recipient
from campaigns.progress import progress
from campaigns.provider import Outcome, Verdict
from campaigns.reconcile import LOST_CLAIM_ERROR, NOT_RESENT_ERROR, NOT_TAKEN_ERROR
from campaigns.sending import Step

pytestmark = pytest.mark.django_db
S = Recipient.Status
LAPSED = timedelta(minutes=3)  # past the claim (2 min), well inside the resend window
TOO_LATE = reconcile.IDEMPOTENT_RESEND_WITHIN + timedelta(minutes=1)


def left_by_a_dead_worker(recipient: Recipient, claimed_ago: timedelta = LAPSED) -> Recipient:
    """The row as a worker leaves it that claimed it `claimed_ago` and then died:
    `sending` on its first attempt, the artist held, the claim lapsed."""
    claimed = timezone.now() - claimed_ago
    assert recipient.artist is not None
    Recipient.objects.filter(pk=recipient.pk).update(
        status=S.SENDING,
        attempts=1,
        email=recipient.artist.user.email,
        lapse_mark=claimed,
        claimed_at=claimed,
        claimed_until=claimed + timedelta(seconds=sending.CLAIM_SECONDS),
    )
    ArtistProfile.objects.filter(pk=recipient.artist.pk).update(sumup_lapse_notified_at=claimed)
    recipient.refresh_from_db()
    return recipient


def sent_before_it_died(recipient: Recipient) -> str:
    """The request the dead worker made: the row's own message, through the provider."""
    assert recipient.artist is not None
    answer = provider.send(messages.build(recipient.campaign, recipient.artist, recipient))
    assert answer.outcome is Outcome.SENT
    return answer.message_id


def recovered_detail(campaign: Campaign) -> str:
    return campaign.actions.get(action=CampaignAction.Action.RECOVERED).detail


@pytest.mark.parametrize("claimed_ago", [LAPSED, TOO_LATE])
def test_a_claim_whose_message_the_provider_took_becomes_sent_and_nothing_goes_again(
    esp, artists, started, claimed_ago
):
    (artist,) = artists(1)
    campaign = started()
    recipient = left_by_a_dead_worker(campaign.recipients.get(), claimed_ago)
    message_id = sent_before_it_died(recipient)

    report = dispatch.recover()

    recipient.refresh_from_db()
    assert (report.lost_claims, report.confirmed_sent) == (1, 1)
    assert (recipient.status, recipient.message_id, recipient.attempts) == (S.SENT, message_id, 1)
    assert recipient.claimed_until is None and recipient.last_error == ""
    (accepted,) = esp.state.accepted
    assert recipient.sent_at is not None
    assert abs(recipient.sent_at.timestamp() - accepted.at) < 0.01, "the provider's time"
    assert sending.send_one(recipient.pk).step is Step.NOTHING
    assert dispatch.recover().lost_claims == 0
    assert esp.state.accepted_for(artist.user.email) == 1 and len(esp.state.arrivals) == 1
    assert esp.state.lookups == [
        {"email": artist.user.email, "sort": "desc", "limit": str(provider.LOOKUP_PAGE)}
    ]
    assert recovered_detail(campaign) == (
        "worker died mid-send: 1 sent per the provider, 0 handed out again, 0 marked unknown"
    )


def test_a_claim_whose_message_never_reached_the_provider_is_sent_once_under_its_key(
    esp, artists, started, django_capture_on_commit_callbacks
):
    (artist,) = artists(1)
    campaign = started()
    recipient = left_by_a_dead_worker(campaign.recipients.get())

    report = dispatch.recover()

    recipient.refresh_from_db()
    assert (report.lost_claims, report.sent_again) == (1, 1)
    assert (recipient.status, recipient.attempts, recipient.last_error) == (
        S.QUEUED,
        1,
        NOT_TAKEN_ERROR,
    )
    assert recipient.dispatched_at is None and recipient.claimed_until is None
    assert recipient.next_attempt_at is not None and recipient.next_attempt_at <= timezone.now()
    artist.refresh_from_db()
    assert artist.sumup_lapse_notified_at == recipient.lapse_mark, "the artist stays held"
    # The campaign's chain hands it out at its next tick.
    with django_capture_on_commit_callbacks() as published:
        assert dispatch.tick(campaign.pk, campaign.dispatch_token) is not None
    recipient.refresh_from_db()
    assert recipient.dispatched_at is not None and len(published) == 1

    assert sending.send_one(recipient.pk).step is Step.SENT
    assert sending.send_one(recipient.pk).step is Step.NOTHING

    recipient.refresh_from_db()
    (accepted,) = esp.state.accepted
    assert accepted.to == artist.user.email
    assert accepted.idempotency_key == str(recipient.idempotency_key)
    assert (recipient.status, recipient.attempts) == (S.SENT, 2)
    assert recipient.message_id == accepted.message_id
    assert recovered_detail(campaign) == (
        "worker died mid-send: 0 sent per the provider, 1 handed out again, 0 marked unknown"
    )


def test_a_provider_log_lagging_behind_cannot_make_the_resend_a_second_email(esp, artists, started):
    (artist,) = artists(1)
    recipient = left_by_a_dead_worker(started().recipients.get())
    esp.state.reset(list_lag=3600.0)  # the log shows nothing of the last hour yet
    message_id = sent_before_it_died(recipient)

    assert dispatch.recover().sent_again == 1
    assert sending.send_one(recipient.pk).step is Step.SENT

    recipient.refresh_from_db()
    assert esp.state.accepted_for(artist.user.email) == 1, "the repeated key sent nothing"
    assert len(esp.state.arrivals) == 2
    assert (recipient.status, recipient.message_id) == (S.SENT, message_id)


def test_while_the_provider_cannot_tell_the_claim_waits_and_a_later_recovery_settles_it(
    esp, artists, started, settings
):
    settings.CAMPAIGNS_RECOVER_INTERVAL = 1  # the stall threshold, in seconds
    artists(1)
    campaign = started()
    recipient = left_by_a_dead_worker(campaign.recipients.get())
    esp.state.reset(list_status=503)
    later = timezone.now() + timedelta(minutes=5)  # long past the stall threshold

    report = dispatch.recover(now=later)

    recipient.refresh_from_db()
    assert (report.lost_claims, report.unconfirmed, report.unstalled) == (0, 1, [])
    assert (recipient.status, recipient.attempts) == (S.SENDING, 1)
    assert not campaign.actions.filter(action=CampaignAction.Action.RECOVERED).exists()
    assert not dispatch.finish(campaign.pk), "a send being settled is work left"
    assert not progress(campaign, now=later).stalled, "recovery is settling it"
    assert len(esp.state.lookups) == 1 and esp.state.arrivals == []

    esp.state.faults.list_status = None
    report = dispatch.recover()

    recipient.refresh_from_db()
    assert (report.sent_again, report.unconfirmed) == (1, 0)
    assert recipient.status == S.QUEUED
    assert sending.send_one(recipient.pk).step is Step.SENT
    assert len(esp.state.accepted) == 1


@pytest.mark.parametrize(
    ("list_status", "error"), [(503, LOST_CLAIM_ERROR), (None, NOT_RESENT_ERROR)]
)
def test_past_the_resend_window_a_claim_the_provider_does_not_confirm_becomes_unknown(
    esp, artists, started, list_status, error
):
    artists(1)
    recipient = left_by_a_dead_worker(started().recipients.get(), TOO_LATE)
    esp.state.reset(list_status=list_status)

    assert dispatch.recover().marked_unknown == 1

    recipient.refresh_from_db()
    assert (recipient.status, recipient.last_error) == (S.UNKNOWN, error)
    assert recipient.claimed_until is None
    assert sending.send_one(recipient.pk).step is Step.NOTHING
    assert esp.state.arrivals == []


def test_a_claim_the_provider_never_took_is_not_sent_again_once_its_attempts_are_used_up(
    esp, artists, started
):
    artists(1)
    recipient = left_by_a_dead_worker(started().recipients.get())
    Recipient.objects.filter(pk=recipient.pk).update(attempts=sending.MAX_ATTEMPTS)

    assert dispatch.recover().marked_unknown == 1

    recipient.refresh_from_db()
    assert (recipient.status, recipient.last_error) == (S.UNKNOWN, NOT_RESENT_ERROR)
    assert esp.state.arrivals == []


def test_a_claim_in_a_cancelled_campaign_is_not_sent_again(esp, artists, started):
    artists(1)
    campaign = started()
    recipient = left_by_a_dead_worker(campaign.recipients.get())
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.CANCELLED)

    assert dispatch.recover().marked_unknown == 1

    recipient.refresh_from_db()
    assert (recipient.status, recipient.last_error) == (S.UNKNOWN, NOT_RESENT_ERROR)


def test_with_a_provider_that_keeps_no_log_a_lapsed_claim_is_unknown_at_once(
    esp, artists, started, settings
):
    artists(1)
    campaign = started()
    recipient = left_by_a_dead_worker(campaign.recipients.get())
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"

    report = dispatch.recover()

    recipient.refresh_from_db()
    assert (report.lost_claims, report.marked_unknown) == (1, 1)
    assert (recipient.status, recipient.last_error) == (S.UNKNOWN, LOST_CLAIM_ERROR)
    assert esp.state.lookups == [], "nothing asked"
    assert recovered_detail(campaign) == (
        "worker died mid-send: 0 sent per the provider, 0 handed out again, 1 marked unknown"
    )


def test_a_recovery_asks_about_a_bounded_number_of_claims_oldest_first(
    esp, artists, started, monkeypatch
):
    artists(3)
    campaign = started()
    rows = [
        left_by_a_dead_worker(row, LAPSED + timedelta(seconds=n))
        for n, row in enumerate(campaign.recipients.order_by("pk"))
    ]
    monkeypatch.setattr(reconcile, "LOOKUPS_PER_RUN", 2)

    first = dispatch.recover()

    assert (first.sent_again, first.unconfirmed) == (2, 1)
    assert campaign.recipients.get(pk=rows[0].pk).status == S.SENDING, "the newest waits"
    assert recovered_detail(campaign) == (
        "worker died mid-send: 0 sent per the provider, 2 handed out again, "
        "0 marked unknown, 1 still unconfirmed"
    )
    second = dispatch.recover()
    assert (second.sent_again, second.unconfirmed) == (1, 0)
    assert len(esp.state.lookups) == 3


def since(minutes: int) -> datetime:
    return timezone.now() - timedelta(minutes=minutes)


def test_the_provider_is_asked_about_the_campaigns_tag_and_the_claims_time_only(
    esp, artists, started
):
    (artist,) = artists(1)
    recipient = started().recipients.get()
    sent_before_it_died(recipient)
    email, kind = artist.user.email, recipient.campaign.kind

    found = provider.look_up(email, kind, since(1))

    assert found.verdict is Verdict.ACCEPTED
    assert found.message_id == esp.state.accepted[0].message_id
    assert provider.look_up(email, "another_kind", since(1)).verdict is Verdict.ABSENT
    later = timezone.now() + timedelta(seconds=1)
    assert provider.look_up(email, kind, later).verdict is Verdict.ABSENT
    assert provider.look_up("someone@example.com", kind, since(1)).verdict is Verdict.ABSENT


def test_the_provider_cannot_tell_when_older_messages_may_still_be_recent_enough(
    esp, artists, started, monkeypatch
):
    (artist,) = artists(1)
    campaign = started()
    for _ in range(2):  # samples, each without an idempotency key: two messages
        assert provider.send(messages.build(campaign, artist)).outcome is Outcome.SENT
    monkeypatch.setattr(provider, "LOOKUP_PAGE", 1)

    found = provider.look_up(artist.user.email, "another_kind", since(1))

    assert (found.verdict, found.error) == (
        Verdict.CANNOT_TELL,
        "more messages to the address than one page",
    )


def test_the_provider_is_asked_with_the_key_anymail_reads_and_never_tells_it(
    esp, artists, started, settings, caplog
):
    (artist,) = artists(1)
    recipient = left_by_a_dead_worker(started().recipients.get())
    sent_before_it_died(recipient)
    settings.ANYMAIL = {"BREVO_API_URL": esp.api_url}
    settings.BREVO_API_KEY = esp.state.api_key  # a bare setting, as anymail allows

    assert provider.look_up(artist.user.email, recipient.campaign.kind, since(5)).verdict is (
        Verdict.ACCEPTED
    )

    settings.BREVO_API_KEY = "a-revoked-key-9f8e7d"
    with caplog.at_level(logging.INFO, logger="campaigns"):
        found = provider.look_up(artist.user.email, recipient.campaign.kind, since(5))
        assert dispatch.recover().unconfirmed == 1
    assert (found.verdict, found.error) == (Verdict.CANNOT_TELL, "provider answered 401")
    logged = caplog.text
    assert "provider answered 401" in logged
    assert "a-revoked-key" not in logged and artist.user.email not in logged


def test_an_unreachable_provider_cannot_tell(esp, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "BREVO_API_URL": "http://127.0.0.1:9/v3/"}

    found = provider.look_up("ann@example.com", "sumup_reconnect", since(5))

    assert (found.verdict, found.error) == (
        Verdict.CANNOT_TELL,
        "no answer from the provider: ConnectionError",
    )
