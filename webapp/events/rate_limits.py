"""Rate limits shared by every process on every machine, kept in Redis.

Three layers, per rule and rate:

- **The cap**: a moving window (the `limits` library's sliding log) is exact: no
  one-second window ever holds more grants than the rule allows, whatever the number of
  workers. Every call to the remote side takes a slot of it last, right before the
  request is written.
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

No caller ever sleeps: over a limit it is told how long to wait, and re-queues itself.

| rule        | setting                | default | protects                        |
|-------------|------------------------|---------|---------------------------------|
| `sumup-api` | `SUMUP_API_RATE_LIMIT` | 20/s    | SumUp's token endpoint and API  |
| `email`     | `EMAIL_RATE_LIMIT`,    | 10/s    | the email provider's send API   |
|             | or a campaign's rate   |         | (campaigns.sending)             |
"""

import math
import re
import time
from dataclasses import dataclass
from functools import cache
from typing import cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from limits import RateLimitItem, parse
from limits.storage import MovingWindowSupport, storage_from_string

from events import redis

_UNITS = {"s": "second", "sec": "second", "m": "minute", "min": "minute", "h": "hour"}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")

# Bulk work is capped to this share of the rate (and paced just below it, `interval`):
# close enough to be "the rate" (within 3 %), far enough below it that calls arriving a
# little late or early never fill the other side's window past it, with room beside
# them for interactive calls.
PACE_SHARE = 0.97

# GCRA's "virtual scheduling" on one key: the instant (µs, Redis clock) of the next free
# slot. A slot within ARGV[2] µs of now is taken (the key moves one interval on) and its
# offset returned; otherwise nothing changes and the caller learns how long until one is.
# `limits` offers no such algorithm, hence these lines.
_PACE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local ahead = tonumber(ARGV[2])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
if slot - now > ahead then
    return {0, slot - now - ahead}
end
local after = slot + interval
redis.call('SET', KEYS[1], string.format('%d', after), 'PX', math.ceil((after - now) / 1000) + 1000)
return {1, slot - now}
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


def reserve(rule: str, rate: RateLimitItem, *, within: float) -> Slot:
    """Book the next paced slot of `rule` if it falls within `within` seconds.

    The holder comes back at `wait` and takes a slot of the window
    (`acquire(..., bulk=True)`).
    """
    step = interval(rate)
    key = f"events:pace:{rule}:{rate.amount}/{rate.get_expiry()}"
    pace = redis.client().register_script(_PACE_SCRIPT)  # cheap; runs by its SHA
    held, offset = cast(
        list[int], pace(keys=[key], args=[round(step * 1_000_000), round(within * 1_000_000)])
    )
    return Slot(held=bool(held), wait=int(offset) / 1_000_000)


def bulk_share(rate: RateLimitItem) -> RateLimitItem:
    """The part of `rate` that bulk work may take: `PACE_SHARE` of it, rounded, at least 1."""
    amount = max(1, math.floor(rate.amount * PACE_SHARE + 0.5))
    return type(rate)(amount, rate.multiples)


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
