"""Rate limits shared by every process on every machine, kept in Redis.

Three layers, per rule and rate:

- **The cap**: a moving window (the `limits` library's sliding log) is exact: no
  one-second window ever holds more grants than the rule allows, whatever the number of
  workers. Every call to the remote side takes a slot of it last, right before the
  request is written. A rule whose requests may reach the other side unevenly late
  widens its window by a margin in time instead (`acquire_with_margin`).
- **The bulk share**: bulk work (a sweep of token refreshes, a campaign's sends) is
  granted a slot of the cap only while its window holds fewer than `PACE_SHARE` of the
  rate (rounded, at least 1). The other side counts requests as they arrive, a few
  milliseconds after their grant and not all equally late; calls granted right up to
  the cap can arrive bunched into one of its windows. The share keeps that margin, and
  leaves interactive calls (an on-demand token refresh) room a sweep can never take.
- **Pacing**, for queued bulk work: grants spaced evenly, one fewer per window than the
  bulk share, in the manner of GCRA (one "next free slot" instant in Redis, on Redis's
  clock). A whole queue arriving at once books a slot each (`reserve`) and re-queues
  itself for exactly then, so each task waits once instead of all of them retrying
  together, and the calls go out evenly spaced instead of a window's worth in one burst.
  The one grant to spare is for lateness: a task that takes its slot a little late (its
  worker was busy) still finds the share not yet full. Paced at the share itself, every
  window would be full, each late task refused and re-queued, and the re-queued crowding
  the next slots in turn.

Over a limit a caller is told how long to wait. One whose slot frees within a moment (it
ran a little late, or a little early, for its place) may wait for it where it is
(`waiting`): re-queued, it would cost a broker round trip and a second run, and take its
slot that much after it freed, late again. Any longer, it re-queues itself.

| rule        | setting                | default | protects                        |
|-------------|------------------------|---------|---------------------------------|
| `sumup-api` | `SUMUP_API_RATE_LIMIT` | 20/s    | SumUp's token endpoint and API  |
| `email`     | `EMAIL_RATE_LIMIT`,    | 10/s    | the email provider's send API   |
|             | or a campaign's rate   |         | (campaigns.rate: with a margin) |
"""

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from limits import RateLimitItem, parse
from limits.storage import MovingWindowSupport, storage_from_string

from events import shared_redis

_UNITS = {"s": "second", "sec": "second", "m": "minute", "min": "minute", "h": "hour"}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")

# Bulk work is capped to this share of the rate (and paced just below it, `interval`):
# close enough to be "the rate" (within 3 %), far enough below it that calls arriving a
# little late or early never fill the other side's window past it, with room beside
# them for interactive calls.
PACE_SHARE = 0.97

# GCRA's "virtual scheduling" on one key: the instant (µs, Redis clock) of the next free
# slot, never sooner than ARGV[4] µs from now. Up to ARGV[3] slots within ARGV[2] µs of
# now are taken (the key moves one interval on for each) and their offsets returned after
# their count; with none that close, nothing changes and the caller learns how long until
# one is: {0, wait}. `limits` offers no such algorithm, hence these lines.
_PACE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local ahead = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now + tonumber(ARGV[4]))
if slot - now > ahead then
    return {0, slot - now - ahead}
end
local booked = {0}
while booked[1] < wanted and slot - now <= ahead do
    booked[1] = booked[1] + 1
    booked[#booked + 1] = slot - now
    slot = slot + interval
end
redis.call('SET', KEYS[1], string.format('%d', slot), 'PX', math.ceil((slot - now) / 1000) + 1000)
return booked
"""


def parse_rate(text: str, *, setting: str = "rate") -> RateLimitItem:
    """`20/s`, `100/second`, `600/min` or `5/10s` as a `limits` rate: at least one call in
    a period of at least one unit (a rate of none would divide by zero when paced, and
    `limits` reads a period of 0 units as 1)."""
    accepted = f"{setting} must look like 20/s, 600/min or 5/10s, above zero, got {text!r}"
    match = _RATE.fullmatch(text.lower())
    if match is None:
        raise ImproperlyConfigured(accepted)
    amount, multiple, unit = match.groups()
    if int(amount) < 1 or (multiple and int(multiple) < 1):
        raise ImproperlyConfigured(accepted)
    unit = _UNITS.get(unit, unit)
    try:
        return parse(f"{amount}/{multiple}{unit}" if multiple else f"{amount}/{unit}")
    except ValueError:
        raise ImproperlyConfigured(accepted) from None


@cache
def _moving_windows(storage_url: str) -> MovingWindowSupport:
    """The `limits` library's moving-window (sliding log) storage in Redis."""
    return cast(MovingWindowSupport, storage_from_string(storage_url))


@dataclass(frozen=True)
class Slot:
    """A paced slot: `held` means it is the caller's, `wait` seconds from now; otherwise
    none was free close enough, and `wait` says when to ask again."""

    held: bool
    wait: float


def interval(rate: RateLimitItem) -> float:
    """Seconds between paced grants of `rate`: a window of it holds one fewer than the
    bulk share (at least one), so a grant a little late still finds room in the share."""
    return rate.get_expiry() / max(1, bulk_share(rate).amount - 1)


def _pace_key(rule: str, rate: RateLimitItem) -> str:
    return f"events:pace:{rule}:{rate.amount}/{rate.get_expiry()}"


def reserve_many(
    rule: str, rate: RateLimitItem, *, within: float, count: int, lead: float = 0.0
) -> list[float]:
    """Book up to `count` consecutive paced slots of `rule` falling within `within`
    seconds, none sooner than `lead` seconds from now (the time a queued task needs to
    reach a worker); returns each booked slot's wait, in order (empty: none was free).

    Each holder comes back at its wait and takes a slot of the window
    (`acquire(..., bulk=True)`).
    """
    booked = _book(rule, rate, within=within, count=count, lead=lead)
    return [offset / 1_000_000 for offset in booked[1:]] if booked[0] else []


def reserve(rule: str, rate: RateLimitItem, *, within: float, lead: float = 0.0) -> Slot:
    """Book the next paced slot of `rule` if it falls within `within` seconds (see
    `reserve_many`); otherwise say how long until one would."""
    booked = _book(rule, rate, within=within, count=1, lead=lead)
    return Slot(held=bool(booked[0]), wait=int(booked[1]) / 1_000_000)


def _book(rule: str, rate: RateLimitItem, *, within: float, count: int, lead: float) -> list[int]:
    pace = shared_redis.client().register_script(_PACE_SCRIPT)  # cheap; runs by its SHA
    args = [round(interval(rate) * 1e6), round(within * 1e6), count, round(lead * 1e6)]
    return cast(list[int], pace(keys=[_pace_key(rule, rate)], args=args))


def free_slots(rule: str, rate: RateLimitItem, *, within: float, lead: float = 0.0) -> int:
    """How many paced slots of `rule` are free within `within` seconds (see
    `reserve_many`), without booking any: how much work to claim before booking it."""
    pipe = shared_redis.client().pipeline(transaction=False)
    pipe.get(_pace_key(rule, rate))
    pipe.time()
    next_free_us, (seconds, micros) = pipe.execute()
    now = int(seconds) + int(micros) / 1_000_000
    first = max(int(next_free_us or 0) / 1_000_000, now + lead)
    if first - now > within:
        return 0
    return int((now + within - first) // interval(rate)) + 1


def bulk_share(rate: RateLimitItem) -> RateLimitItem:
    """The part of `rate` that bulk work may take: `PACE_SHARE` of it, rounded, at least 1."""
    amount = max(1, math.floor(rate.amount * PACE_SHARE + 0.5))
    return type(rate)(amount, rate.multiples)


def waiting(take: Callable[[], float], at_most: float) -> float:
    """Call `take` (a slot-taking call: 0.0 when granted, else seconds until its slot
    frees) and, while that slot frees within what is left of `at_most` seconds, sleep
    until then and call it again; its last answer (0.0: granted)."""
    wait, waited = take(), 0.0
    while wait and waited + wait <= at_most:
        time.sleep(wait)
        waited += wait
        wait = take()
    return wait


def acquire(rule: str, rate: RateLimitItem, *, bulk: bool = False) -> float:
    """Take one slot of `rule` for a call now; 0.0 if granted, else seconds to wait.

    Every call counts in the rule's one window; `bulk` work is granted a slot only while
    the window holds fewer than its share (`bulk_share`), interactive calls up to the
    whole rate. One window, one timestamp per grant: the share is exact.
    """
    limit = bulk_share(rate).amount if bulk else rate.amount
    expiry = rate.get_expiry()
    key = rate.key_for("events", rule)
    window = _moving_windows(settings.REDIS_URL)
    if window.acquire_entry(key, limit, expiry):
        return 0.0
    # The oldest of the `limit` newest grants leaving the window frees the next slot.
    oldest, _count = window.get_moving_window(key, limit, expiry)
    return max(0.01, oldest + expiry - time.time())


# A sliding log on Redis's clock: the instants (µs) of a rule's latest grants, newest
# first, one entry per slot. ARGV[3] slots are granted together only while at most
# ARGV[1] - ARGV[3] of them fall in the last ARGV[2] µs; otherwise nothing changes and
# the caller learns how long until enough of them leave that window. One clock for
# every caller keeps the log in order.
_WIDENED_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local oldest = redis.call('LINDEX', KEYS[1], limit - cost)
if oldest and now - tonumber(oldest) < window then
    return {0, tonumber(oldest) + window - now}
end
local stamp = string.format('%d', now)
for _ = 1, cost do
    redis.call('LPUSH', KEYS[1], stamp)
end
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {1, 0}
"""


def grant_log_key(rule: str, rate: RateLimitItem) -> str:
    """The Redis list of `acquire_with_margin`'s latest grants of `rule` at `rate`: µs
    on Redis's clock, newest first."""
    return f"events:grants:{rule}:{rate.amount}/{rate.get_expiry()}"


def acquire_with_margin(rule: str, rate: RateLimitItem, *, margin: float, cost: int = 1) -> float:
    """Take `cost` slots of `rule` for a call now (one request carrying `cost` messages,
    at most the rate's amount), in a window `margin` seconds longer than the rate's
    period; 0.0 if granted, else seconds to wait.

    For calls whose requests reach the other side unevenly late after their grant (a
    database commit and the request itself lie between them): no window of the period
    plus `margin` ever holds more grants than the rate, so none of the other side's
    periods does while the lateness of its requests differs by no more than `margin`.
    The margin is kept in time, as lateness is, where the bulk share keeps a count (one
    call at 50/s: 20 ms). Every call of the rule must take its slot here; the grants
    are logged apart from `acquire`'s window.
    """
    if not 1 <= cost <= rate.amount:
        raise ValueError(f"{cost} slots can never be granted together at {rate}")
    take = shared_redis.client().register_script(_WIDENED_SCRIPT)  # cheap; runs by its SHA
    window_us = round((rate.get_expiry() + margin) * 1_000_000)
    granted, wait_us = cast(
        list[int], take(keys=[grant_log_key(rule, rate)], args=[rate.amount, window_us, cost])
    )
    return 0.0 if granted else max(0.001, int(wait_us) / 1_000_000)
