"""Redis stopped under a running worker, then back: the Procfile's worker reconnects and
consumes again, and `healthcheck --worker` says so, red during the outage and green after.

The worker holds countdown tasks when Redis goes: closing the lost connection then
tries to put them back, which is where kombu used to end the worker (events/broker.py).
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

if TYPE_CHECKING:
    from tests.support.private_stack import PrivateStack, private_stack
else:
    from support.private_stack import PrivateStack, private_stack

pytestmark = pytest.mark.processes

OUTAGE = 10.0  # seconds Redis stays down
START_TIMEOUT = 60.0  # seconds for a started worker to answer its health check
# The worker retries the broker 2, 4, 6, 8 ... s apart: after a 10 s outage it is back
# within ~10 s; the rest is a margin for a busy machine.
RECOVERY_TIMEOUT = 45.0  # seconds after Redis is back
HELD_TASKS = 5
HELD_COUNTDOWN = 600  # seconds: the tasks are still held in the worker when Redis goes


def _worker_healthy(stack: PrivateStack) -> bool:
    return stack.manage("healthcheck", "--worker").returncode == 0


def _held(stack: PrivateStack) -> int:
    # Each countdown task the worker holds is in the broker's unacknowledged set.
    client = stack.redis_client()
    try:
        return cast(int, client.zcard("unacked_index"))  # sync client: an int
    finally:
        client.close()


def test_a_worker_consumes_again_after_redis_was_stopped_and_started(tmp_path: Path) -> None:
    with private_stack(tmp_path) as stack:
        worker = stack.processes.start("worker")
        stack.wait_for(lambda: _worker_healthy(stack), "worker healthy", START_TIMEOUT)
        for _ in range(HELD_TASKS):
            stack.control.send_task("jobs.health.ping", countdown=HELD_COUNTDOWN)
        stack.wait_for(lambda: _held(stack) == HELD_TASKS, "countdown tasks held", 20)

        stack.redis.stop()
        down_since = time.monotonic()
        during = stack.manage("healthcheck", "--worker")
        time.sleep(max(OUTAGE - (time.monotonic() - down_since), 0.0))
        alive_through_outage = worker.is_alive()
        stack.redis.start()  # the same port; empty, as after a restart without persistence

        back = time.monotonic()
        stack.wait_for(lambda: _worker_healthy(stack), "worker healthy again", RECOVERY_TIMEOUT)
        result = stack.control.send_task("jobs.health.ping").get(timeout=RECOVERY_TIMEOUT)
        recovered_in = time.monotonic() - back
        log = worker.log_text()

    assert during.returncode != 0
    assert "FAIL worker" in during.stdout
    assert alive_through_outage, log[-3000:]
    assert result == {"database": "postgresql", "artists": 0}
    assert recovered_in < RECOVERY_TIMEOUT
    assert "Connection to broker lost" in log
    assert "AttributeError" not in log
    assert "Unrecoverable error" not in log
