"""The Redis broker transport, with channels that can be closed after Redis has gone.

When Redis goes away under a worker, Celery's consumer first collects the broken
connection, which cuts the transport's link to it, then closes it again. Closing a
channel that still holds unacknowledged messages (a countdown waiting in the worker, a
prefetched task) tries to put them back on the queue, and kombu then builds a Redis
client from the cut link: an AttributeError, not a connection error, so the worker
calls it unrecoverable and exits instead of reconnecting. Here that attempt fails as
the connection error it is; the consumer carries on, reconnects when Redis is back and
consumes again. The messages it could not put back stay in Redis's unacknowledged set
(kept across a restart by append-only persistence) and are delivered again once the
visibility timeout passes, as after any worker that died holding them.
"""

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise RedisConnectionError("broker connection already closed")
        # kombu's stubs leave out this private method.
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
