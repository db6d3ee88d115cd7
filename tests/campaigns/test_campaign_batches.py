"""Many recipients in one request, through anymail's real Brevo backend to the fake
Brevo's batch API over HTTP: each artist's own text and unsubscribe link, one
idempotency key per batch kept by every resend, and a whole batch's outcome when the
provider times out, fails, refuses it or takes it while its worker dies."""

import html
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from accounts.models import ArtistProfile
from campaigns import batching, dispatch, messages, provider, rate, sending, tracking, unsubscribe
from campaigns.models import Campaign, Recipient
from campaigns.provider import Outcome
from campaigns.reconnect_notice import reconnect_context, render_reconnect
from campaigns.sending import Step

if TYPE_CHECKING:
    from tests.support.rehearsal import PrivateRedis
else:
    from support.rehearsal import PrivateRedis

pytestmark = pytest.mark.django_db
S = Recipient.Status
NAMES = ["Tom & <Jerry>", 'Zoë "Z" O\'Neil', "Ann"]
MARKER = "XDISPLAYNAMEX"  # nothing a template escapes


def rows_of(campaign: Campaign) -> list[Recipient]:
    return list(campaign.recipients.select_related("artist__user").order_by("pk"))


def ids_of(campaign: Campaign) -> list[int]:
    return [row.pk for row in rows_of(campaign)]


def expected_parts(profile: ArtistProfile) -> tuple[str, str]:
    """(text, html) the artist must read: their name as written in the text, escaped
    once in the HTML."""
    rendered = render_reconnect({**reconnect_context(profile), "display_name": MARKER})
    name = str(reconnect_context(profile)["display_name"])
    return rendered.text.replace(MARKER, name), rendered.html.replace(MARKER, html.escape(name))


def test_a_batch_sends_each_artist_once_in_one_request_with_their_own_text_and_link(
    esp, artists, started
):
    people = [artists(1, display_name=name)[0] for name in NAMES]
    campaign = started()

    assert sending.send_batch(ids_of(campaign)) == ([], 0.0)
    assert sending.send_batch(ids_of(campaign)) == ([], 0.0)  # a redelivered task

    addresses = tuple(artist.user.email for artist in people)
    assert esp.state.requests == [addresses], "one request for all, never repeated"
    (key,) = {str(row.batch_key) for row in rows_of(campaign)}
    by_address = {message.to: message for message in esp.state.accepted}
    assert sorted(by_address) == sorted(addresses) and len(esp.state.accepted) == 3
    for row, artist in zip(rows_of(campaign), people, strict=True):
        message = by_address[artist.user.email]
        assert (message.text, message.html) == expected_parts(artist)
        link = message.headers["List-Unsubscribe"].strip("<>")
        subscriber = unsubscribe.read_token(urlsplit(link).path.rstrip("/").rsplit("/", 1)[1])
        assert subscriber == unsubscribe.Subscriber(artist.user.email, row.pk)
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.metadata == tracking.metadata_for(row)
        assert message.idempotency_key == key
        assert (row.status, row.attempts, row.message_id) == (S.SENT, 1, message.message_id)
    assert "Hello Tom &amp; &lt;Jerry&gt;," in by_address[addresses[0]].html
    assert "Hello Tom & <Jerry>," in by_address[addresses[0]].text


def test_a_timeout_makes_the_whole_batch_unknown_and_nothing_sends_it_again(
    esp, artists, started, settings
):
    people = artists(3)
    campaign = started()
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": "0.5"}
    esp.state.reset(hang={people[1].user.email})

    assert sending.send_batch(ids_of(campaign)) == ([], 0.0)
    esp.state.release.set()

    rows = rows_of(campaign)
    assert {(row.status, row.attempts) for row in rows} == {(S.UNKNOWN, 1)}
    assert all("ReadTimeout" in row.last_error for row in rows)
    assert sending.send_batch(ids_of(campaign)) == ([], 0.0)
    assert dispatch.recover().lost_claims == 0
    assert len(esp.state.requests) == 1 and esp.state.accepted == []
    for row in rows:
        assert row.artist is not None
        row.artist.refresh_from_db()
        assert row.artist.sumup_lapse_notified_at == row.lapse_mark, "each artist stays held"


@pytest.mark.parametrize("fault", ["error_rate", "accepted_error_rate"])
def test_a_5xx_sends_the_batch_again_together_under_its_key_and_never_twice(
    esp, artists, started, fault
):
    people = artists(3)
    campaign = started()
    # The first request fails (after the provider took it, for `accepted_error_rate`).
    esp.state.reset(**{fault: 1.0}, error_statuses=(503,), max_errors_per_address=1)

    assert sending.send_batch(ids_of(campaign)) == ([], 0.0)
    rows = rows_of(campaign)
    assert {(row.status, row.attempts) for row in rows} == {(S.QUEUED, 1)}
    assert len({row.next_attempt_at for row in rows}) == 1, "one backoff for the batch"
    (key,) = {row.batch_key for row in rows}
    Recipient.objects.filter(pk__in=ids_of(campaign)).update(next_attempt_at=timezone.now())

    # Any one of them sends them all: the batch goes together or not at all.
    assert sending.send_one(ids_of(campaign)[2]).step is Step.SENT

    addresses = tuple(artist.user.email for artist in people)
    assert esp.state.requests == [addresses, addresses]
    assert all(esp.state.accepted_for(address) == 1 for address in addresses)
    assert {m.idempotency_key for m in esp.state.accepted} == {str(key)}
    rows = rows_of(campaign)
    assert {(row.status, row.attempts, row.batch_key) for row in rows} == {(S.SENT, 2, key)}
    assert [row.message_id for row in rows] == [
        next(m.message_id for m in esp.state.accepted if m.to == address) for address in addresses
    ]


def test_a_worker_killed_mid_batch_is_reconciled_without_a_duplicate_when_the_log_lags(
    esp, artists, started
):
    people = artists(3)
    campaign = started()
    key = uuid.uuid4()
    claimed = timezone.now() - timedelta(minutes=3)  # the claim lapsed
    for row in rows_of(campaign):
        assert row.artist is not None
        Recipient.objects.filter(pk=row.pk).update(
            status=S.SENDING,
            attempts=1,
            batch_key=key,
            lapse_mark=claimed,
            claimed_at=claimed,
            claimed_until=claimed + timedelta(seconds=sending.CLAIM_SECONDS),
        )
        ArtistProfile.objects.filter(pk=row.artist.pk).update(sumup_lapse_notified_at=claimed)
    # The request its worker made before it died: the provider took it.
    members = [(row, row.artist) for row in rows_of(campaign) if row.artist is not None]
    assert provider.send(messages.build_batch(campaign, members, str(key))).outcome is Outcome.SENT
    lagging = people[1].user.email
    esp.state.faults.list_omit = {lagging}  # its message is not in the log yet

    report = dispatch.recover()

    assert (report.confirmed_sent, report.sent_again, report.marked_unknown) == (2, 1, 0)
    late = campaign.recipients.get(artist=people[1])
    assert (late.status, late.batch_key) == (S.QUEUED, key)
    assert sending.send_one(late.pk).step is Step.SENT  # under the same key: dropped

    assert all(esp.state.accepted_for(a.user.email) == 1 for a in people), "no duplicate"
    assert esp.state.requests[-1] == (lagging,)
    (first,) = [m for m in esp.state.accepted if m.to == lagging]
    late.refresh_from_db()
    assert (late.status, late.attempts, late.message_id) == (S.SENT, 2, first.message_id)
    assert campaign.counts()["sent"] == 3


def test_a_batch_refused_whole_goes_again_one_by_one_and_only_the_bad_address_fails(
    esp, artists, started
):
    people = artists(3)
    bad = people[1].user.email
    campaign = started()
    esp.state.reset(refuse={bad: 400})

    sending.send_batch(ids_of(campaign))
    rows = rows_of(campaign)
    assert all(row.status == S.QUEUED and row.batch_key == row.idempotency_key for row in rows)
    assert all(row.last_error.startswith(sending.SPLIT_ERROR) for row in rows)
    sending.send_batch(ids_of(campaign))

    addresses = tuple(artist.user.email for artist in people)
    assert esp.state.requests == [addresses, *((address,) for address in addresses)]
    statuses = {row.email: row.status for row in rows_of(campaign)}
    assert statuses == {addresses[0]: S.SENT, bad: S.FAILED, addresses[2]: S.SENT}
    assert esp.state.accepted_for(bad) == 0
    refused = campaign.recipients.get(artist=people[1])
    assert refused.artist is not None and refused.last_error.startswith("provider answered 400")
    refused.artist.refresh_from_db()
    assert refused.artist.sumup_lapse_notified_at is None, "a later notice may reach them"


def test_a_row_claimed_by_the_release_before_goes_alone_under_its_own_key(esp, artists, started):
    people = artists(3)
    campaign = started()
    legacy = campaign.recipients.get(artist=people[0])
    # The release before sent it once (a 5xx) and queued it again: no batch key.
    Recipient.objects.filter(pk=legacy.pk).update(attempts=1, batch_key=None)

    assert sending.send_batch(ids_of(campaign)) == ([], 0.0)

    first, *others = (artist.user.email for artist in people)
    assert sorted(esp.state.requests) == sorted([(first,), tuple(others)])
    (alone,) = [m for m in esp.state.accepted if m.to == first]
    assert alone.idempotency_key == str(legacy.idempotency_key)
    assert campaign.counts()["sent"] == 3


def test_an_artist_skipped_at_the_claim_is_left_out_of_the_batch(esp, artists, started):
    people = artists(3)
    campaign = started()
    ArtistProfile.objects.filter(pk=people[2].pk).update(
        sumup_connection_status="connected"
    )  # reconnected before the send

    sending.send_batch(ids_of(campaign))

    assert esp.state.requests == [(people[0].user.email, people[1].user.email)]
    assert campaign.recipients.get(artist=people[2]).status == S.SKIPPED


@pytest.mark.parametrize(
    ("rate", "per_task", "per_request"),
    [
        ("", 500, 1000),
        ("5/s", 1, 5),
        ("37/s", 1, 37),
        ("50/s", 5, 50),
        ("100/s", 10, 100),
        ("1000/s", 100, 1000),
        ("600/min", 1, 10),
    ],
)
def test_a_batch_never_carries_more_than_a_second_of_the_rate(esp, rate, per_task, per_request):
    campaign = Campaign(rate_limit=rate)
    assert dispatch.batch_size(campaign) == per_task
    assert batching.most_per_request(campaign) == per_request


def hold_first_artist_from_before(campaign: Campaign, people: list[ArtistProfile]) -> datetime:
    """The first artist's row holds its artist from an earlier attempt (its lapse mark, an
    hour ago, on both): undoing a claim must restore that mark and no other."""
    earlier = timezone.now() - timedelta(hours=1)
    retried = campaign.recipients.get(artist=people[0])
    Recipient.objects.filter(pk=retried.pk).update(lapse_mark=earlier)
    ArtistProfile.objects.filter(pk=people[0].pk).update(sumup_lapse_notified_at=earlier)
    return earlier


def test_a_batch_over_the_rate_makes_no_request_and_its_claim_is_undone(esp, artists, started):
    people = artists(3)
    campaign = started(rate_limit="4/s")
    earlier = hold_first_artist_from_before(campaign, people)
    limit = campaign.rate
    assert limit is not None and rate.take_slots(limit, 2) == 0.0  # 2 of 4 left this second

    Recipient.objects.filter(pk__in=ids_of(campaign)).update(dispatched_at=timezone.now())

    assert sending.send_batch(ids_of(campaign)) == ([], 0.0), "no task waits for slots"

    assert esp.state.requests == [], "no request was made"
    rows = rows_of(campaign)
    assert {(row.status, row.attempts, row.claimed_until) for row in rows} == {(S.QUEUED, 0, None)}
    assert all(row.dispatched_at is None for row in rows), "back to the campaign's schedule"
    assert [row.lapse_mark for row in rows] == [earlier, None, None]
    marks = [ArtistProfile.objects.get(pk=artist.pk).sumup_lapse_notified_at for artist in people]
    assert marks == [earlier, None, None], "the artists are held as before, no more"


def test_a_batch_claimed_when_the_limiter_fails_is_undone_and_its_artists_held_as_before(
    esp, artists, started, settings
):
    people = artists(3)
    campaign = started(rate_limit="4/s")
    earlier = hold_first_artist_from_before(campaign, people)
    settings.REDIS_URL = PrivateRedis().url  # nothing listens there: the limiter fails

    assert sending.send_batch(ids_of(campaign)) == ([], 0.0)

    assert esp.state.requests == [], "no request was made"
    rows = rows_of(campaign)
    assert {(row.status, row.attempts) for row in rows} == {(S.QUEUED, 0)}, "no attempt used"
    assert all(row.last_error.startswith("rate limiter unavailable") for row in rows)
    assert [row.lapse_mark for row in rows] == [earlier, None, None]
    marks = [ArtistProfile.objects.get(pk=artist.pk).sumup_lapse_notified_at for artist in people]
    assert marks == [earlier, None, None], "the claim was undone: held as before, no more"
