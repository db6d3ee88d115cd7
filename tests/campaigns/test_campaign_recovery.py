"""A campaign whose sends went with a dead worker, while its chain still looked alive:
the admin shows it stalled, and beat's recovery task, on a real worker, resumes it to
the end with one email per artist; sends whose worker died inside the provider call are
settled with the provider's log."""

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import ArtistProfile
from campaigns import messages, provider, services
from campaigns.models import Campaign, CampaignAction, Recipient
from campaigns.progress import progress
from campaigns.provider import Outcome
from campaigns.sending import CLAIM_SECONDS
from fakes.brevo import FakeBrevo
from jobs.campaigns import recover

if TYPE_CHECKING:
    from tests.support.polling import wait_for
else:
    from support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
DEADLINE = 30.0  # seconds any wait below may take on a slow machine before the test fails


def as_left_by_a_dead_worker(artist_ids: list[int]) -> Campaign:
    """A running campaign whose every send was handed out to a worker that then died:
    its chain's heartbeat and its hand-outs are fresh, so neither the chain check nor
    the re-dispatch of old hand-outs would touch it; only the stall does."""
    campaign = services.create(Campaign(name="Reconnect", rate_limit=""), actor="test")
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.RUNNING,
        started_at=now,
        dispatch_token="held-by-the-dead-worker",
        dispatch_heartbeat=now,
    )
    CampaignAction.record(campaign, CampaignAction.Action.STARTED, actor="test")
    for profile_id in artist_ids:
        Recipient.objects.create(
            campaign=campaign, artist_id=profile_id, email=f"{profile_id}@x", dispatched_at=now
        )
    return Campaign.objects.get(pk=campaign.pk)


def test_a_stalled_campaign_shows_stalled_and_beats_recovery_finishes_it_once_each(
    project_worker, esp: FakeBrevo, artists, settings, admin_client
):
    settings.CAMPAIGNS_RECOVER_INTERVAL = 1  # the stall threshold, in seconds
    people = artists(6)
    campaign = as_left_by_a_dead_worker([artist.pk for artist in people])

    wait_for(lambda: progress(campaign).stalled, "the campaign to stall", DEADLINE)
    page = admin_client.get(reverse("admin:campaigns_campaign_changelist")).text
    assert "Stalled — no progress for 1 s" in page
    assert esp.state.arrivals == []

    recover.delay()  # what beat sends every CAMPAIGNS_RECOVER_INTERVAL
    wait_for(
        lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE,
        "the campaign to finish",
        DEADLINE,
    )

    assert all(esp.state.accepted_for(artist.user.email) == 1 for artist in people)
    assert campaign.counts()["sent"] == 6
    recovered = campaign.actions.get(action=CampaignAction.Action.RECOVERED)
    assert recovered.detail.endswith("6 send(s) handed out again by a new dispatch chain")
    finished = progress(Campaign.objects.get(pk=campaign.pk))
    assert (finished.state, finished.stalled, finished.eta_seconds) == ("Finished", False, None)


def claimed_by_a_dead_worker(campaign: Campaign, profile: ArtistProfile) -> Recipient:
    """A row whose worker claimed it minutes ago and died: `sending`, the claim lapsed."""
    claimed = timezone.now() - timedelta(minutes=3)
    ArtistProfile.objects.filter(pk=profile.pk).update(sumup_lapse_notified_at=claimed)
    return Recipient.objects.create(
        campaign=campaign,
        artist=profile,
        email=profile.user.email,
        status=Recipient.Status.SENDING,
        attempts=1,
        lapse_mark=claimed,
        claimed_at=claimed,
        claimed_until=claimed + timedelta(seconds=CLAIM_SECONDS),
    )


def test_beats_recovery_settles_sends_lost_with_their_worker_with_the_provider(
    project_worker, esp: FakeBrevo, artists
):
    took, never = artists(2)
    campaign = as_left_by_a_dead_worker([])
    # The dead worker's chain went with it: its heartbeat is old.
    Campaign.objects.filter(pk=campaign.pk).update(
        dispatch_heartbeat=timezone.now() - timedelta(minutes=3)
    )
    taken = claimed_by_a_dead_worker(campaign, took)
    lost = claimed_by_a_dead_worker(campaign, never)
    # The provider took one request before its worker died; the other never left.
    answer = provider.send(messages.build(campaign, took, taken))
    assert answer.outcome is Outcome.SENT

    recover.delay()  # what beat sends every CAMPAIGNS_RECOVER_INTERVAL
    wait_for(
        lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE,
        "the campaign to finish",
        DEADLINE,
    )

    taken.refresh_from_db()
    lost.refresh_from_db()
    assert (taken.status, taken.message_id, taken.attempts) == ("sent", answer.message_id, 1)
    assert (lost.status, lost.attempts) == ("sent", 2)
    assert esp.state.accepted_for(took.user.email) == 1
    (resent,) = [m for m in esp.state.accepted if m.to == never.user.email]
    assert resent.idempotency_key == str(lost.idempotency_key)
    assert lost.message_id == resent.message_id
    recovered = campaign.actions.get(action=CampaignAction.Action.RECOVERED)
    assert recovered.detail == (
        "worker died mid-send: 1 sent per the provider, 1 handed out again, 0 marked unknown"
    )
