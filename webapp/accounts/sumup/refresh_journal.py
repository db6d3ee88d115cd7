"""The refresh journal: SumUp's answer to a token refresh, kept in Redis from the moment
it arrives until the artist's row holds it.

SumUp may rotate the refresh token, and a rotated-out one is refused: an answer that
never reaches the database loses the artist's grant. So the worker that gets an answer
writes it here first (encrypted, as the token columns are), then stores it in the row,
then forgets it. Should the worker die in between, or the database be away, the entry
stays, and whoever next claims that artist, is refused its refresh token, or sweeps,
applies it first (`accounts.sumup.refresh.apply_journal`): the row gets the tokens SumUp
issued, and nobody calls SumUp with the spent one.

An entry answers for one version of the row (`sumup_token_version`): a row written since
(a newer refresh, a reconnect, a disconnect) makes it stale, and it is dropped unapplied.
A journal that cannot be written (Redis away) is no reason to drop the answer: the
refresh goes on to store it in the row, as it would have without a journal.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, cast

from redis import RedisError

from accounts.sumup import crypto
from events import shared_redis

log = logging.getLogger(__name__)

JOURNAL_KEY = "sumup:refresh:journal"  # a hash: artist profile id -> encrypted entry

# Forget an entry only if it is still the one this worker wrote: another worker may have
# journaled a newer answer for the same artist since.
_FORGET_SCRIPT = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
    return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


@dataclass(frozen=True)
class Entry:
    """SumUp's `answer` to a refresh of row version `version`, received at
    `received_at` (epoch seconds) by the holder of `claim`."""

    version: int
    claim: str
    answer: dict[str, Any]
    received_at: float
    sealed: str  # the entry as stored, to forget exactly this one


def record(
    profile_id: int, *, version: int, claim: str, answer: dict[str, Any], received_at: float
) -> Entry | None:
    """Journal an answer; None if Redis did not take it."""
    body = {"version": version, "claim": claim, "answer": answer, "received_at": received_at}
    sealed = crypto.encrypt(json.dumps(body))
    try:
        shared_redis.client().hset(JOURNAL_KEY, str(profile_id), sealed)
    except RedisError as exc:
        log.warning(
            "SumUp refresh of artist profile %s: the refresh journal is unavailable (%s); "
            "storing the answer without it",
            profile_id,
            type(exc).__name__,
        )
        return None
    return _unseal(sealed)


def forget(profile_id: int, entry: Entry) -> None:
    try:
        forget_script = shared_redis.client().register_script(_FORGET_SCRIPT)
        forget_script(keys=[JOURNAL_KEY], args=[str(profile_id), entry.sealed])
    except RedisError as exc:
        # Left behind, the entry is stale (its version is stored) and dropped when read.
        log.warning(
            "SumUp refresh journal: artist profile %s's entry not cleared (%s)",
            profile_id,
            type(exc).__name__,
        )


def pending(profile_id: int) -> Entry | None:
    """The journaled answer for one artist, if any."""
    try:
        sealed = cast(bytes | None, shared_redis.client().hget(JOURNAL_KEY, str(profile_id)))
    except RedisError as exc:
        log.warning("SumUp refresh journal unreadable (%s)", type(exc).__name__)
        return None
    return _unseal(sealed.decode("ascii")) if sealed else None


def all_pending() -> dict[int, Entry]:
    """Every journaled answer, by artist profile id."""
    try:
        entries = cast(dict[bytes, bytes], shared_redis.client().hgetall(JOURNAL_KEY))
    except RedisError as exc:
        log.warning("SumUp refresh journal unreadable (%s)", type(exc).__name__)
        return {}
    return {int(key): _unseal(sealed.decode("ascii")) for key, sealed in entries.items()}


def _unseal(sealed: str) -> Entry:
    body = json.loads(crypto.decrypt(sealed))
    return Entry(
        version=int(body["version"]),
        claim=str(body["claim"]),
        answer=dict(body["answer"]),
        received_at=float(body["received_at"]),
        sealed=sealed,
    )
