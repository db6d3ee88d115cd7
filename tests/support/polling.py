"""Waiting in tests for work that other processes do: poll a condition until it holds.

Every wait has a deadline and, when it fails, says what it waited for, with whatever
explains it (the log tails of the processes involved)."""

import time
from collections.abc import Callable


def poll[T](condition: Callable[[], T], timeout: float, interval: float = 0.2) -> tuple[T, float]:
    """Call `condition` until it returns something truthy or `timeout` seconds pass:
    its last value and the seconds waited (for tests that measure a recovery)."""
    started = time.monotonic()
    while True:
        value = condition()
        waited = time.monotonic() - started
        if value or waited > timeout:
            return value, waited
        time.sleep(interval)


def wait_for[T](
    condition: Callable[[], T],
    what: str,
    timeout: float,
    *,
    interval: float = 0.2,
    explain: Callable[[], str] = lambda: "",
    check: Callable[[], None] = lambda: None,
) -> T:
    """Poll until `condition` is truthy and return its value; past `timeout`, fail naming
    `what`, with `explain()` (e.g. the processes' log tails). `check` runs between polls
    and may fail sooner (e.g. a process that died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        check()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s\n{explain()}".rstrip())
        time.sleep(interval)
