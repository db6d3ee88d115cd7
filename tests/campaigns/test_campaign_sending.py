"""Sending one recipient through anymail's real Brevo backend to the fake Brevo: the
claim, what each provider answer does to the row, and the message itself."""

import json
import time
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING, cast

import pytest
import redis
import time_machine
from django.conf import settings
from django.utils import timezone

from accounts.models import ArtistProfile
from campaigns import dispatch, rate, reconcile, sending, services
from campaigns.models import Campaign, CampaignAction, Recipient
from campaigns.sending import Step

if TYPE_CHECKING:
    from tests.support.rehearsal import PrivateRedis
    from tests.support.worker_processes import purge_queue
else:
    from support.rehearsal import PrivateRedis
    from support.worker_processes import purge_queue

pytestmark = pytest.mark.django_db
S = Recipient.Status


def only_recipient(campaign: Campaign) -> Recipient:
    return campaign.recipients.get()


def test_it_never_emails_an_artist_twice_when_the_task_runs_again(esp, artists, started):
    (artist,) = artists(1)
    recipient = only_recipient(started())

    assert sending.send_one(recipient.pk).step is Step.SENT
    assert sending.send_one(recipient.pk).step is Step.NOTHING  # a redelivered task

    recipient.refresh_from_db()
    assert esp.state.accepted_for(artist.user.email) == 1
    assert len(esp.state.arrivals) == 1
    assert (recipient.status, recipient.attempts) == (S.SENT, 1)
    assert recipient.message_id == esp.state.accepted[0].message_id


def test_the_email_is_personalised_html_and_text_with_one_click_unsubscribe(
    esp, artists, started, settings
):
    settings.UNSUBSCRIBE_EMAIL = "unsubscribe@jerseyevents.test"
    (artist,) = artists(1, display_name="Nina Blue")
    recipient = only_recipient(started())

    sending.send_one(recipient.pk)

    (message,) = esp.state.accepted
    assert message.to == artist.user.email
    assert "Hello Nina Blue," in message.text and "Hello Nina Blue," in message.html
    dashboard = f"{settings.SITE_URL}/accounts/dashboard/"
    assert dashboard in message.text and dashboard in message.html
    unsubscribe, mailto = (
        part.strip(" <>") for part in message.headers["List-Unsubscribe"].split(",")
    )
    assert unsubscribe.startswith(f"{settings.SITE_URL}/email/unsubscribe/")
    assert mailto == "mailto:unsubscribe@jerseyevents.test?subject=unsubscribe"
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.metadata == {
        "campaign_recipient_id": str(recipient.pk),
        "campaign_send_key": str(recipient.idempotency_key),
    }
    assert message.idempotency_key == str(recipient.idempotency_key)
    assert parseaddr(settings.DEFAULT_FROM_EMAIL)[1]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_429_or_5xx_means_not_sent_and_queues_the_recipient_again_with_backoff(
    esp, artists, started, status
):
    artists(1)
    recipient = only_recipient(started())
    esp.state.reset(error_rate=1.0, error_statuses=(status,))

    assert sending.send_one(recipient.pk).step is Step.RETRY

    recipient.refresh_from_db()
    assert recipient.status == S.QUEUED
    assert recipient.attempts == 1
    assert recipient.last_error.startswith(f"provider answered {status}")
    assert recipient.next_attempt_at is not None and recipient.next_attempt_at > timezone.now()
    assert sending.send_one(recipient.pk).step is Step.NOTHING, "not before its backoff"

    esp.state.reset()
    Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=timezone.now())
    assert sending.send_one(recipient.pk).step is Step.SENT
    assert len(esp.state.accepted) == 1


def test_a_retry_after_a_5xx_that_was_in_fact_sent_is_dropped_by_the_idempotency_key(
    esp, artists, started
):
    (artist,) = artists(1)
    recipient = only_recipient(started())
    esp.state.reset(accepted_error_rate=1.0)  # the provider sends, then answers 500

    assert sending.send_one(recipient.pk).step is Step.RETRY
    esp.state.faults.accepted_error_rate = 0.0
    Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=timezone.now())
    assert sending.send_one(recipient.pk).step is Step.SENT

    recipient.refresh_from_db()
    assert esp.state.accepted_for(artist.user.email) == 1
    assert len(esp.state.arrivals) == 2
    assert recipient.message_id == esp.state.accepted[0].message_id


def test_retries_stop_after_the_last_attempt_and_the_recipient_is_failed(esp, artists, started):
    (artist,) = artists(1)
    recipient = only_recipient(started())
    esp.state.reset(error_rate=1.0, error_statuses=(503,))

    for _ in range(sending.MAX_ATTEMPTS):
        Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=None)
        sending.send_one(recipient.pk)

    recipient.refresh_from_db()
    assert (recipient.status, recipient.attempts) == (S.FAILED, sending.MAX_ATTEMPTS)
    assert len(esp.state.arrivals) == sending.MAX_ATTEMPTS
    artist.refresh_from_db()
    assert artist.sumup_lapse_notified_at is None, "not notified: a later campaign may try"


def test_a_permanent_error_is_recorded_and_not_retried(esp, artists, started):
    (artist,) = artists(1)
    recipient = only_recipient(started())
    esp.state.reset(refuse={artist.user.email: 400})

    assert sending.send_one(recipient.pk).step is Step.FAILED
    assert sending.send_one(recipient.pk).step is Step.NOTHING

    recipient.refresh_from_db()
    assert recipient.status == S.FAILED
    assert recipient.last_error.startswith("provider answered 400")
    assert len(esp.state.arrivals) == 1


def test_a_timeout_leaves_the_outcome_unknown_and_nothing_resends_it(
    esp, artists, started, settings
):
    (artist,) = artists(1)
    recipient = only_recipient(started())
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": "0.5"}
    esp.state.reset(hang={artist.user.email})

    assert sending.send_one(recipient.pk).step is Step.UNKNOWN
    esp.state.release.set()

    recipient.refresh_from_db()
    assert recipient.status == S.UNKNOWN
    assert "ReadTimeout" in recipient.last_error
    assert sending.send_one(recipient.pk).step is Step.NOTHING
    assert dispatch.recover().lost_claims == 0
    assert esp.state.hung == [artist.user.email], "one request, never repeated"
    artist.refresh_from_db()
    assert artist.sumup_lapse_notified_at == recipient.lapse_mark, "the artist stays held"


def test_a_dead_workers_claim_too_old_to_resend_becomes_unknown_and_only_staff_resend_it(
    esp, artists, started, admin_user
):
    (artist,) = artists(1)
    campaign = started()
    recipient = only_recipient(campaign)
    # The provider shows no message, but past this a resend's key may be forgotten.
    claimed = timezone.now() - reconcile.IDEMPOTENT_RESEND_WITHIN - timedelta(minutes=1)
    Recipient.objects.filter(pk=recipient.pk).update(
        status=S.SENDING, attempts=1, claimed_at=claimed, claimed_until=claimed
    )

    assert sending.send_one(recipient.pk).step is Step.NOTHING  # redelivered: still claimed
    assert dispatch.recover().lost_claims == 1
    recipient.refresh_from_db()
    assert recipient.status == S.UNKNOWN and esp.state.arrivals == []
    assert sending.send_one(recipient.pk).step is Step.NOTHING

    assert services.resend([recipient.pk], user=admin_user) == 1
    assert sending.send_one(recipient.pk).step is Step.SENT

    assert esp.state.accepted_for(artist.user.email) == 1
    resent = campaign.actions.get(action=CampaignAction.Action.RESENT)
    assert (resent.user, resent.detail) == (admin_user, "1 recipient(s)")


def test_over_the_rate_a_send_is_told_how_long_to_wait_and_sends_nothing(esp, artists, started):
    artists(2)
    first, second = started(rate_limit="1/min").recipients.all()

    assert sending.send_one(first.pk).step is Step.SENT
    result = sending.send_one(second.pk)

    # The limiter's window is the period widened by its margin (campaigns.rate).
    longest = 60 + rate.LATENESS_MARGIN
    assert result.step is Step.WAIT and 0 < result.wait <= longest
    second.refresh_from_db()
    assert (second.status, second.attempts) == (S.QUEUED, 0)
    assert second.artist is not None
    assert second.lapse_mark is None, "not claimed while over the rate"
    assert second.dispatched_at is None, "back to the campaign's schedule"
    assert second.artist.sumup_lapse_notified_at is None, "the artist is not held meanwhile"
    assert len(esp.state.arrivals) == 1, "the request was never made"


def test_a_send_a_little_early_for_its_slot_waits_for_it_and_is_made(esp, artists, started):
    (artist,) = artists(1)
    campaign = started(rate_limit="2/s")
    recipient = only_recipient(campaign)
    limit = campaign.rate
    assert limit is not None and rate.take_slots(limit, 2) == 0.0  # the window is full
    freed_at = time.time() + 1 + rate.LATENESS_MARGIN
    time.sleep(1 + rate.LATENESS_MARGIN - sending.WAIT_AT_MOST / 2)

    result = sending.send_one(recipient.pk)

    # Waited in the task, not re-queued: a re-queue would take the slot late, and the
    # send a window later would inherit that lateness.
    assert result == sending.Result(Step.SENT)
    assert [arrival.to for arrival in esp.state.arrivals] == [artist.user.email]
    assert esp.state.arrivals[0].at >= freed_at - 0.002, "never before its slot freed"


def test_an_artist_held_by_another_notice_is_skipped_without_using_a_slot(esp, artists, started):
    held, other = artists(2)
    first, second = started(rate_limit="1/min").recipients.order_by("pk")
    ArtistProfile.objects.filter(pk=held.pk).update(sumup_lapse_notified_at=timezone.now())

    assert sending.send_one(first.pk).step is Step.SKIPPED
    assert sending.send_one(second.pk).step is Step.SENT, "the minute's one slot was left"
    assert [arrival.to for arrival in esp.state.arrivals] == [other.user.email]


def test_sends_keep_the_schedule_when_a_tick_publishes_them_late(
    artists, started, django_capture_on_commit_callbacks
):
    artists(3)
    campaign = started(rate_limit="10/s")
    Campaign.objects.filter(pk=campaign.pk).update(dispatch_token="chain")
    purge_queue()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        ticked_at = timezone.now()
        with django_capture_on_commit_callbacks() as publish:
            assert dispatch.tick(campaign.pk, "chain") == dispatch.TICK_SECONDS
        traveller.shift(timedelta(seconds=0.5))  # a busy database held the tick this long
        for callback in publish:
            callback()
    assert campaign.rate is not None
    step = timedelta(seconds=rate.send_interval(campaign.rate))

    assert queued_send_etas() == [ticked_at + n * step for n in range(3)]
    purge_queue()


def queued_send_etas() -> list[datetime]:
    """When each send task waiting in the broker's queue is due."""
    waiting = cast(
        list[bytes], redis.Redis.from_url(settings.CELERY_BROKER_URL).lrange("celery", 0, -1)
    )
    messages = [json.loads(raw)["headers"] for raw in waiting]
    return sorted(
        datetime.fromisoformat(headers["eta"])
        for headers in messages
        if headers["task"] == "jobs.campaigns.send"
    )


def test_a_limiter_without_redis_sends_nothing_and_queues_the_recipient_again(
    esp, artists, started, settings
):
    (artist,) = artists(1)
    recipient = only_recipient(started(rate_limit="10/s"))
    limiter_redis = PrivateRedis()
    settings.REDIS_URL = limiter_redis.url  # nothing listens there yet: Redis is down

    assert sending.send_one(recipient.pk).step is Step.RETRY

    recipient.refresh_from_db()
    assert (recipient.status, recipient.attempts) == (S.QUEUED, 0), "back, no attempt used"
    assert recipient.last_error == "rate limiter unavailable, nothing sent: ConnectionError"
    assert recipient.next_attempt_at is not None and recipient.next_attempt_at > timezone.now()
    assert recipient.dispatched_at is None, "the dispatcher hands it out once due"
    assert esp.state.arrivals == [], "no request was made"
    artist.refresh_from_db()
    assert recipient.lapse_mark is None and artist.sumup_lapse_notified_at is None, "unclaimed"
    assert sending.send_one(recipient.pk).step is Step.NOTHING, "not before its backoff"

    with limiter_redis:
        Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=timezone.now())
        assert sending.send_one(recipient.pk).step is Step.SENT
        assert sending.send_one(recipient.pk).step is Step.NOTHING

    recipient.refresh_from_db()
    assert (recipient.status, recipient.attempts, recipient.last_error) == (S.SENT, 1, "")
    assert esp.state.accepted_for(artist.user.email) == 1
    assert len(esp.state.arrivals) == 1


def test_a_limiter_failing_for_longer_than_every_attempt_never_fails_the_recipient(
    esp, artists, started, settings
):
    (artist,) = artists(1)
    recipient = only_recipient(started(rate_limit="10/s"))
    limiter_redis = PrivateRedis()
    settings.REDIS_URL = limiter_redis.url

    for _ in range(sending.MAX_ATTEMPTS + 2):
        Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=None)
        assert sending.send_one(recipient.pk).step is Step.RETRY

    recipient.refresh_from_db()
    assert (recipient.status, recipient.attempts) == (S.QUEUED, 0)
    with limiter_redis:
        Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=None)
        assert sending.send_one(recipient.pk).step is Step.SENT
    assert esp.state.accepted_for(artist.user.email) == 1


def test_a_paused_campaign_sends_nothing_until_it_is_resumed(esp, artists, started):
    artists(1)
    campaign = started()
    recipient = only_recipient(campaign)

    services.pause(campaign.pk, actor="test")
    assert sending.send_one(recipient.pk).step is Step.NOTHING
    services.resume(campaign.pk, actor="test")
    assert sending.send_one(recipient.pk).step is Step.SENT

    actions = list(campaign.actions.values_list("action", flat=True))
    assert actions == ["created", "started", "paused", "resumed"]


def test_a_cancelled_campaign_skips_everyone_still_queued(esp, artists, started):
    artists(3)
    campaign = started()
    first = campaign.recipients.first()
    assert first is not None
    sending.send_one(first.pk)

    services.cancel(campaign.pk, actor="test")

    counts = Campaign.objects.get(pk=campaign.pk).counts()
    assert (counts["sent"], counts["skipped"], counts["queued"]) == (1, 2, 0)
    assert all(sending.send_one(r.pk).step is Step.NOTHING for r in campaign.recipients.all())
    assert len(esp.state.accepted) == 1


def test_an_artist_deleted_before_the_send_is_skipped(esp, artists, started):
    (artist,) = artists(1)
    recipient = only_recipient(started())
    ArtistProfile.objects.filter(pk=artist.pk).delete()

    assert sending.send_one(recipient.pk).step is Step.SKIPPED
    recipient.refresh_from_db()
    assert recipient.status == S.SKIPPED and recipient.email == artist.user.email
    assert esp.state.arrivals == []
