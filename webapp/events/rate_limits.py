"""Rate limits shared by every process on every machine, kept in Redis.

A moving window (the `limits` library's sliding log) is exact: no one-second window ever
holds more than the rule allows, whatever the number of workers. A caller over the limit
is told how long to wait; it re-queues itself for then, it never sleeps.

| rule        | setting                | default | protects                        |
|-------------|------------------------|---------|---------------------------------|
| `sumup-api` | `SUMUP_API_RATE_LIMIT` | 20/s    | SumUp's token endpoint and API  |
| `email`     | `EMAIL_RATE_LIMIT`,    | 10/s    | the email provider's send API   |
|             | or a campaign's rate   |         | (campaigns.sending)             |
"""

import re
import time
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

_UNITS = {"s": "second", "sec": "second", "m": "minute", "min": "minute", "h": "hour"}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")


def parse_rate(text: str, *, setting: str = "rate") -> RateLimitItem:
    """`20/s`, `100/second`, `600/min` or `5/10s` as a `limits` rate."""
    match = _RATE.fullmatch(text.lower())
    if match is None:
        raise ImproperlyConfigured(f"{setting} must look like 20/s or 600/minute, got {text!r}")
    amount, multiple, unit = match.groups()
    unit = _UNITS.get(unit, unit)
    try:
        return parse(f"{amount}/{multiple}{unit}" if multiple else f"{amount}/{unit}")
    except ValueError:
        raise ImproperlyConfigured(f"{setting} has an unknown unit: {text!r}") from None


@cache
def _limiter(storage_url: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(storage_url))


def acquire(rule: str, rate: RateLimitItem) -> float:
    """Take one slot of `rule`; return 0.0 if granted, else seconds until one frees up."""
    limiter = _limiter(settings.REDIS_URL)
    if limiter.hit(rate, "events", rule):
        return 0.0
    reset_at = limiter.get_window_stats(rate, "events", rule).reset_time
    return max(0.01, reset_at - time.time())
