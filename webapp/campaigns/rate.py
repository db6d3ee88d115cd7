"""A campaign's rate: the slot each send takes, and the schedule its sends are handed out on.

The provider counts messages as their requests arrive, and each arrives a little after
its slot (the slots are taken right before the request is written: campaigns.sending),
some later than others: a few milliseconds on an idle machine, more on a busy one.
Slots are therefore taken in a window `LATENESS_MARGIN` longer than the rate's period
(events.rate_limits.acquire_with_margin): at most the rate in any 1.03 s, so at most the
rate in any second at the provider while the lateness of its requests differs by less
than that (1-3 ms p50, 8-20 ms p99 on a 2-core machine busy with the benchmark itself,
measured by bench/campaigns_bench.py).

A request carrying a batch of messages takes their slots together, one per message
(the provider counts messages): the whole batch or none of it. Before any work is done
for a request, `wait_for_slots` tells, taking none, whether it would be refused now.

The dispatcher hands sends out evenly, `SCHEDULE_ALLOWANCE` slower than that window
allows (96.6% of the rate: 48.3 sends a second at 50/s, 966 at 1000/s). A send that
takes its slot late makes the send a window after it wait for its own (in its task, up
to campaigns.sending.WAIT_AT_MOST); the allowance is how much of that lateness each
window wins back, so a late send delays the few after it, never the rest of the
campaign. The margin and the allowance together stay well under 5% of the rate, the
least a campaign at its limit must achieve.
"""

from __future__ import annotations

import logging
import time
from typing import cast

from limits import RateLimitItem

from events import shared_redis
from events.rate_limits import acquire_with_margin, grant_log_key

log = logging.getLogger(__name__)

RULE = "email"
LATENESS_MARGIN = 0.03  # seconds
SCHEDULE_ALLOWANCE = 0.005  # seconds


# How long until `ARGV[2]` slots are free in the window of the last ARGV[3] µs that
# holds at most ARGV[1] (0 when they are now), on Redis's clock, reading the log that
# events.rate_limits.acquire_with_margin writes; nothing is taken.
_FREE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local oldest = redis.call('LINDEX', KEYS[1], tonumber(ARGV[1]) - tonumber(ARGV[2]))
if oldest and now - tonumber(oldest) < tonumber(ARGV[3]) then
    return tonumber(oldest) + tonumber(ARGV[3]) - now
end
return 0
"""


def wait_for_slots(rate: RateLimitItem, count: int) -> float:
    """Seconds until `count` slots of `rate` would be granted (0.0: now), taking none: a
    request that would be refused learns it before any work is done for it."""
    count = max(1, min(count, rate.amount))
    look = shared_redis.client().register_script(_FREE_SCRIPT)  # cheap; runs by its SHA
    window_us = round((rate.get_expiry() + LATENESS_MARGIN) * 1_000_000)
    wait_us = look(keys=[grant_log_key(RULE, rate)], args=[rate.amount, count, window_us])
    return int(cast(int, wait_us)) / 1_000_000


def take_slots(rate: RateLimitItem, count: int = 1) -> float:
    """`count` slots of `rate` for one request about to be made with that many messages:
    0.0 when granted, else the seconds until they free."""
    before = time.time()
    wait = acquire_with_margin(RULE, rate, margin=LATENESS_MARGIN, cost=count)
    if not wait:
        # The limiter stamps the slots between these two instants: an audit trail of the
        # rate as granted (the provider sees them once the claim is committed).
        log.info(
            "email slots (%d) at %s granted between %.6f and %.6f",
            count,
            rate,
            before,
            time.time(),
        )
    return wait


def send_interval(rate: RateLimitItem, per_request: int = 1) -> float:
    """Seconds between the sends the dispatcher hands out under `rate`, when they go
    `per_request` to a request (each request's slots stamped at once, at its first
    send's due time): a window holds only whole requests, so a rate's amount that
    `per_request` does not divide leaves the remainder unused."""
    usable = max(1, rate.amount // per_request * per_request)
    return (rate.get_expiry() + LATENESS_MARGIN + SCHEDULE_ALLOWANCE) / usable
