"""The cache stores JSON, never pickles.

The cache lives in the Redis that also carries the broker. Django's Redis cache pickles
what it stores, so anyone able to write to that Redis could run code in every web and
worker process the next time it reads a key (unpickling calls whatever the payload
names). This serializer writes plain values only (numbers, strings, booleans, None,
lists and dicts of them) and reads nothing else: a value that is not JSON is logged and
read as absent.
"""

import json
import logging

log = logging.getLogger(__name__)


class JSONSerializer:
    """`OPTIONS["serializer"]` of Django's RedisCache: `dumps` and `loads` of its values."""

    def dumps(self, value: object) -> int | bytes:
        # Integers stay integers, as Django's own serializer keeps them, so Redis's INCR
        # (cache.incr) works on them.
        if type(value) is int:
            return value
        # TypeError for anything JSON cannot carry: storing it is a bug to see at once.
        return json.dumps(value, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> object:
        try:
            return int(data)
        except ValueError:
            pass
        try:
            return json.loads(data)
        except ValueError:  # not JSON (e.g. a pickle), or not even UTF-8
            log.error(
                "A cache value that is not JSON was read as absent (%d bytes): this project "
                "writes only JSON, so something else wrote to the cache's Redis",
                len(data),
            )
            return None
