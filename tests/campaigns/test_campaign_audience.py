"""Who a campaign emails: the audience at the start, the check just before each send,
the suppression list, and one notice per lapse shared with the token refresh."""

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.signals import sumup_grant_lapsed
from accounts.sumup import refresh_alerts
from campaigns import audience, sending
from campaigns.models import Campaign, Recipient, Suppression
from campaigns.sending import Step

pytestmark = pytest.mark.django_db
S = Recipient.Status


def rows(campaign: Campaign) -> dict[int | None, tuple[str, str]]:
    return {r.artist_id: (r.status, r.last_error) for r in campaign.recipients.all()}


def connect(profile: ArtistProfile) -> None:
    profile.update_sumup_connection({"access_token": "a", "expires_in": 3600})


def test_only_approved_artists_who_must_connect_are_queued(make_artist, started):
    waiting = make_artist(is_approved=True)
    expired = make_artist(is_approved=True, sumup_connection_status=ConnectionStatus.EXPIRED)
    failing = make_artist(is_approved=True, sumup_connection_status=ConnectionStatus.ERROR)
    unapproved = make_artist(is_approved=False)
    connected = make_artist(is_approved=True)
    connect(connected)

    campaign = started(approved_only=True)

    assert rows(campaign) == {
        waiting.pk: (S.QUEUED, ""),
        expired.pk: (S.QUEUED, ""),
        failing.pk: (S.QUEUED, ""),
    }
    assert unapproved.pk in rows(started(approved_only=False))
    assert connected.pk not in rows(started(approved_only=False))


def test_suppressed_and_already_notified_artists_are_listed_as_skipped(make_artist, started):
    fresh = make_artist(is_approved=True)
    suppressed = make_artist(is_approved=True)
    Suppression.objects.create(email=suppressed.user.email, reason="bounced")
    notified = make_artist(is_approved=True, sumup_lapse_notified_at=timezone.now())

    assert audience.count(approved_only=True, include_notified=False) == audience.AudienceCount(
        eligible=1, suppressed=1, already_notified=1
    )
    assert rows(started()) == {
        fresh.pk: (S.QUEUED, ""),
        suppressed.pk: (S.SKIPPED, audience.SKIP_SUPPRESSED),
        notified.pk: (S.SKIPPED, audience.SKIP_NOTIFIED),
    }
    assert rows(started(include_notified=True))[notified.pk] == (S.QUEUED, "")


def test_an_artist_who_reconnected_before_the_send_is_skipped_never_emailed(
    esp, make_artist, started
):
    artist = make_artist(is_approved=True)
    recipient = started().recipients.get()
    connect(artist)

    assert sending.send_one(recipient.pk).step is Step.SKIPPED

    recipient.refresh_from_db()
    assert (recipient.status, recipient.last_error) == (S.SKIPPED, audience.SKIP_CONNECTED)
    assert esp.state.arrivals == []


def test_an_address_suppressed_after_the_start_is_skipped_at_send_time(esp, make_artist, started):
    artist = make_artist(is_approved=True)
    recipient = started().recipients.get()
    Suppression.objects.create(email=artist.user.email, reason="complained")

    assert sending.send_one(recipient.pk).step is Step.SKIPPED
    assert esp.state.arrivals == []


def test_an_artist_unapproved_after_the_start_is_skipped(esp, make_artist, started):
    artist = make_artist(is_approved=True)
    recipient = started(approved_only=True).recipients.get()
    ArtistProfile.objects.filter(pk=artist.pk).update(is_approved=False)

    assert sending.send_one(recipient.pk).step is Step.SKIPPED
    assert esp.state.arrivals == []


def test_two_campaigns_over_the_same_artist_email_them_once(esp, make_artist, started):
    artist = make_artist(is_approved=True)
    first, second = started().recipients.get(), started().recipients.get()

    assert sending.send_one(first.pk).step is Step.SENT
    assert sending.send_one(second.pk).step is Step.SKIPPED

    second.refresh_from_db()
    assert second.last_error == audience.SKIP_NOTIFIED
    assert esp.state.accepted_for(artist.user.email) == 1


def test_a_resend_campaign_emails_an_artist_notified_in_this_lapse(esp, make_artist, started):
    artist = make_artist(is_approved=True)
    sending.send_one(started().recipients.get().pk)

    again = started(include_notified=True).recipients.get()
    assert sending.send_one(again.pk).step is Step.SENT
    assert esp.state.accepted_for(artist.user.email) == 2


def test_an_artist_who_reconnects_and_lapses_again_can_be_notified_again(esp, make_artist, started):
    artist = make_artist(is_approved=True)
    sending.send_one(started().recipients.get().pk)
    connect(artist)
    ArtistProfile.objects.filter(pk=artist.pk).update(
        sumup_connection_status=ConnectionStatus.EXPIRED
    )

    assert sending.send_one(started().recipients.get().pk).step is Step.SENT
    assert esp.state.accepted_for(artist.user.email) == 2


def test_the_refresh_notice_goes_through_the_campaign_path_once_per_lapse(
    esp, eager, make_artist, started, django_capture_on_commit_callbacks
):
    artist = make_artist(sumup_connection_status=ConnectionStatus.EXPIRED)

    with django_capture_on_commit_callbacks(execute=True):
        refresh_alerts.ask_to_reconnect(artist.pk)
        refresh_alerts.ask_to_reconnect(artist.pk)  # a redelivered refresh task

    standing = Campaign.objects.get(automatic=True)
    (recipient,) = standing.recipients.all()
    assert (recipient.status, recipient.artist_id) == (S.SENT, artist.pk)
    assert esp.state.accepted_for(artist.user.email) == 1
    assert standing.rate_limit == "10/s" and standing.status == Campaign.Status.RUNNING
    artist.refresh_from_db()
    assert artist.sumup_lapse_notified_at == recipient.lapse_mark
    assert rows(started(approved_only=False))[artist.pk] == (S.SKIPPED, audience.SKIP_NOTIFIED)


def test_the_refresh_notice_respects_the_suppression_list(
    esp, eager, make_artist, django_capture_on_commit_callbacks
):
    artist = make_artist(sumup_connection_status=ConnectionStatus.EXPIRED)
    Suppression.objects.create(email=artist.user.email, reason="unsubscribed")

    with django_capture_on_commit_callbacks(execute=True):
        refresh_alerts.ask_to_reconnect(artist.pk)

    recipient = Recipient.objects.get(artist=artist)
    assert (recipient.status, recipient.last_error) == (S.SKIPPED, audience.SKIP_SUPPRESSED)
    assert esp.state.arrivals == []


def test_a_new_lapse_reuses_the_artists_row_in_the_refresh_campaign(
    esp, eager, make_artist, django_capture_on_commit_callbacks
):
    artist = make_artist(sumup_connection_status=ConnectionStatus.EXPIRED)
    with django_capture_on_commit_callbacks(execute=True):
        refresh_alerts.ask_to_reconnect(artist.pk)
    connect(artist)  # clears the lapse mark
    ArtistProfile.objects.filter(pk=artist.pk).update(
        sumup_connection_status=ConnectionStatus.EXPIRED
    )

    with django_capture_on_commit_callbacks(execute=True):
        refresh_alerts.ask_to_reconnect(artist.pk)

    (recipient,) = Recipient.objects.filter(artist=artist)
    assert (recipient.status, recipient.attempts) == (S.SENT, 1)
    assert esp.state.accepted_for(artist.user.email) == 2
    first, second = esp.state.accepted
    assert first.idempotency_key != second.idempotency_key
    assert recipient.message_id == second.message_id
    assert recipient.campaign.actions.filter(action="requeued").count() == 1


@pytest.fixture
def also_listening() -> Iterator[Callable[[Callable[..., None]], None]]:
    """`also_listening(receiver)`: subscribe `receiver` to lapses for this test, after
    the campaigns app's own receiver."""
    uid = "tests.lapse_listener"

    def listen(receiver: Callable[..., None]) -> None:
        sumup_grant_lapsed.connect(receiver, weak=False, dispatch_uid=uid)

    yield listen
    sumup_grant_lapsed.disconnect(dispatch_uid=uid)


def test_a_lapse_is_announced_once_with_the_mark_it_set(esp, eager, make_artist, also_listening):
    artist = make_artist(sumup_connection_status=ConnectionStatus.EXPIRED)
    heard: list[tuple[object, int, datetime]] = []

    def record(sender: object, *, profile_id: int, mark: datetime, **_: Any) -> None:
        heard.append((sender, profile_id, mark))

    also_listening(record)
    refresh_alerts.ask_to_reconnect(artist.pk)
    refresh_alerts.ask_to_reconnect(artist.pk)  # a redelivered refresh task

    artist.refresh_from_db()
    assert heard == [(ArtistProfile, artist.pk, artist.sumup_lapse_notified_at)]


def test_a_receiver_that_fails_undoes_the_mark_and_the_queued_notice(
    esp, eager, make_artist, also_listening, django_capture_on_commit_callbacks
):
    artist = make_artist(sumup_connection_status=ConnectionStatus.EXPIRED)

    def fail(sender: object, **_: Any) -> None:
        raise RuntimeError("receiver failed")

    also_listening(fail)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        refresh_alerts.ask_to_reconnect(artist.pk)

    artist.refresh_from_db()
    assert artist.sumup_lapse_notified_at is None, "a later lapse notice can still reach them"
    assert not Recipient.objects.filter(artist=artist).exists()
    assert esp.state.arrivals == []
