from functools import cache

import redis
from django.conf import settings


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)


def client() -> redis.Redis:
    """The shared Redis of settings.REDIS_URL (counters, flags, locks)."""
    return _client(settings.REDIS_URL)
