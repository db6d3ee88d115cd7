"""A campaign's rate: the slot each send takes, and the schedule its sends are handed out on.

The provider counts requests as they arrive, and each arrives a little after its slot
(the claim's commit and the request itself lie between them), some later than others:
a few milliseconds on an idle machine, tens of them on a busy one. Slots are therefore
taken in a window `LATENESS_MARGIN` longer than the rate's period
(events.rate_limits.acquire_with_margin): at most the rate in any 1.03 s, so at most the
rate in any second at the provider while the lateness of its requests differs by less
than that (2-3 ms p50, 6-12 ms p99 on an idle 2-core machine, measured by
bench/campaigns_bench.py).

The dispatcher hands sends out evenly, `SCHEDULE_ALLOWANCE` slower than that window
allows: of two sends a window apart, the earlier may take its slot up to that much
later after its due time than the other and the other still finds room, instead of
being refused and re-queued (95.7% of the rate: 47.8 sends a second at 50/s). The two
together stay under 5% of the rate, the least a campaign at its limit must achieve.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItem

from events.rate_limits import acquire_with_margin

log = logging.getLogger(__name__)

RULE = "email"
LATENESS_MARGIN = 0.03  # seconds
SCHEDULE_ALLOWANCE = 0.015  # seconds


def take_slot(rate: RateLimitItem) -> float:
    """One slot of `rate` for a request about to be made: 0.0 when granted, else the
    seconds until one frees."""
    before = time.time()
    wait = acquire_with_margin(RULE, rate, margin=LATENESS_MARGIN)
    if not wait:
        # The limiter stamps the slot between these two instants: an audit trail of the
        # rate as granted (the provider sees it once the claim is committed).
        log.info("email slot at %s granted between %.6f and %.6f", rate, before, time.time())
    return wait


def send_interval(rate: RateLimitItem) -> float:
    """Seconds between the sends the dispatcher hands out under `rate`."""
    return (rate.get_expiry() + LATENESS_MARGIN + SCHEDULE_ALLOWANCE) / rate.amount
