"""Which of a send task's recipients go out, and in which provider requests.

A task names recipients; the rows are read in one query with what the send needs (the
campaign, the artist and their address, whether the address is suppressed). Only
`queued` rows of a running campaign, due for their next attempt, are sent. A row with a
batch key (campaigns.sending) brings every queued row of that key along, in id order as
the first request had them, and none of them goes while one is not due or still
claimed: all of a key go together or not at all. The rest are grouped: with a provider
that takes batches, new rows by campaign and message variant (campaigns.messages), up to
`most_per_request` and each address once; a row sent before without a batch key (by
the release before, or ordered again by staff) alone; with any other provider, every
row alone.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, QuerySet

from campaigns import audience, messages, provider
from campaigns.models import Campaign, Recipient

S = Recipient.Status


@dataclass
class Request:
    """The rows one provider request carries: one campaign, one batch key."""

    campaign: Campaign
    key: uuid.UUID
    rows: list[Recipient] = field(default_factory=list)


@dataclass
class Plan:
    """A task's recipients read: the requests to make, and the rows due but no longer
    eligible, by the reason to skip them."""

    requests: list[Request]
    ineligible: dict[str, list[Recipient]]


def most_per_request(campaign: Campaign) -> int:
    """The most recipients one request carries: the provider's batch limit, and under a
    rate never more than one second of it (at least one)."""
    if not provider.can_batch():
        return 1
    limit = campaign.rate
    if limit is None:
        return provider.MAX_BATCH
    return max(1, min(provider.MAX_BATCH, limit.amount, int(limit.amount / limit.get_expiry())))


def plan(recipient_ids: list[int], now: datetime) -> Plan:
    """Read the rows, set the ineligible apart, and group the rest into requests."""
    rows = _read(Q(pk__in=recipient_ids))
    due = [row for row in rows if _is_due(row, now)]
    # A stray copy that is not due yet, or a row of the key still claimed, holds the
    # others of its key back.
    held_back = {row.batch_key for row in rows if row.batch_key and not _is_due(row, now)}
    keys = {row.batch_key for row in due if row.batch_key} - held_back
    if keys:
        kin = _read(Q(batch_key__in=keys, status__in=[S.QUEUED, S.SENDING]))
        held_back |= {row.batch_key for row in kin if row.status == S.SENDING and row.batch_key}
        asked = set(recipient_ids)
        due += [row for row in kin if row.status == S.QUEUED and row.pk not in asked]
    due = sorted((row for row in due if row.batch_key not in held_back), key=lambda row: row.pk)
    ineligible: dict[str, list[Recipient]] = defaultdict(list)
    eligible = []
    for row in due:
        suppressed = bool(getattr(row, "address_suppressed", False))
        reason = audience.ineligible_reason(row.campaign, row.artist, suppressed=suppressed)
        if reason:
            ineligible[reason].append(row)
        else:
            eligible.append(row)
    return Plan(_group(eligible), dict(ineligible))


def address(row: Recipient) -> str:
    """The address a row of an eligible artist is sent to: the artist's own, now."""
    assert row.artist is not None
    return row.artist.user.email


def _read(rows: Q) -> list[Recipient]:
    found: QuerySet[Recipient] = (
        Recipient.objects.select_related("campaign", "artist__user")
        .annotate(address_suppressed=audience.suppressed("artist__user__email"))
        .filter(rows)
        .order_by("pk")
    )
    return list(found)


def _is_due(row: Recipient, now: datetime) -> bool:
    return (
        row.status == S.QUEUED
        and row.campaign.status == Campaign.Status.RUNNING
        and (row.next_attempt_at is None or row.next_attempt_at <= now)
    )


def _group(rows: list[Recipient]) -> list[Request]:
    requests: dict[Hashable, Request] = {}
    fresh: dict[Hashable, list[Recipient]] = defaultdict(list)
    batching = provider.can_batch()
    for row in rows:
        if row.batch_key is not None:
            keyed = requests.setdefault(row.batch_key, Request(row.campaign, row.batch_key))
            keyed.rows.append(row)
        elif row.attempts or not batching:
            requests[row.pk] = Request(row.campaign, row.idempotency_key, [row])
        else:
            assert row.artist is not None  # eligible
            fresh[(row.campaign_id, messages.variant(row.campaign, row.artist))].append(row)
    for group in fresh.values():
        for chunk in _chunks(group, most_per_request(group[0].campaign)):
            key = chunk[0].idempotency_key if len(chunk) == 1 else uuid.uuid4()
            requests[key] = Request(chunk[0].campaign, key, chunk)
    return sorted(requests.values(), key=lambda request: request.rows[0].pk)


def _chunks(rows: list[Recipient], size: int) -> Iterable[list[Recipient]]:
    chunk: list[Recipient] = []
    addresses: set[str] = set()
    for row in rows:
        to = address(row)
        if len(chunk) >= size or to in addresses:
            yield chunk
            chunk, addresses = [], set()
        chunk.append(row)
        addresses.add(to)
    if chunk:
        yield chunk
