"""The shared rate limits (events.rate_limits) on the real Redis: the exact cap, the
paced slots bulk work takes, slots booked ahead by queued work, and windows widened by a
margin for requests that arrive unevenly late."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest
from django.core.exceptions import ImproperlyConfigured

from events import rate_limits
from events.rate_limits import acquire, interval, parse_rate, reserve


@pytest.fixture
def rule():
    """A rule of its own per test: nothing left by another test counts against it."""
    return f"test-{uuid.uuid4().hex}"


def test_rates_are_read_in_the_forms_the_settings_use():
    assert parse_rate("20/s").amount == 20
    assert parse_rate("600/min").get_expiry() == 60
    assert parse_rate("5/10s").get_expiry() == 10
    with pytest.raises(ImproperlyConfigured, match="EMAIL_RATE_LIMIT"):
        parse_rate("fast", setting="EMAIL_RATE_LIMIT")


@pytest.mark.parametrize("text", ["0/s", "0/10s", "5/0s", "-1/s", "5/fortnight", "5 per s"])
def test_a_rate_of_nothing_or_of_no_known_period_is_refused(text):
    with pytest.raises(ImproperlyConfigured, match=r"EMAIL_RATE_LIMIT must look like 20/s"):
        parse_rate(text, setting="EMAIL_RATE_LIMIT")


def test_bulk_work_is_paced_one_grant_per_window_below_its_share():
    # The share is 97 % of the rate, rounded (see the test of `bulk_share` below).
    assert 0.95 <= rate_limits.PACE_SHARE < 1
    paces = {
        text: round(parse_rate(text).get_expiry() / interval(parse_rate(text)), 6)
        for text in ("1/s", "10/s", "50/s", "100/s", "600/min")
    }
    assert paces == {"1/s": 1, "10/s": 9, "50/s": 48, "100/s": 96, "600/min": 581}


def test_the_cap_never_grants_more_than_the_rate_in_a_window(rule):
    rate = parse_rate("5/s")
    waits = [acquire(rule, rate) for _ in range(7)]
    assert waits[:5] == [0.0] * 5
    assert all(0 < wait <= 1 for wait in waits[5:])


def test_bulk_work_takes_a_share_of_the_rate_and_leaves_the_rest(rule):
    rate = parse_rate("20/s")
    share = rate_limits.bulk_share(rate)
    assert share.amount == 19 and share.get_expiry() == 1
    bulk = [acquire(rule, rate, bulk=True) for _ in range(20)]
    assert bulk[:19] == [0.0] * 19
    assert 0 < bulk[19] <= 1, "the bulk share is spent"
    # Interactive calls still find the rest of the cap, and no more.
    assert acquire(rule, rate) == 0.0
    assert acquire(rule, rate) > 0


def test_the_bulk_share_rounds_and_never_reaches_zero():
    amounts = {
        text: rate_limits.bulk_share(parse_rate(text)).amount
        for text in ("1/s", "10/s", "50/s", "100/s", "600/min")
    }
    assert amounts == {"1/s": 1, "10/s": 10, "50/s": 49, "100/s": 97, "600/min": 582}


def test_a_bulk_share_of_the_whole_rate_still_leaves_the_cap_to_others(rule):
    rate = parse_rate("1/s")  # the share rounds up to the whole rate
    assert acquire(rule, rate, bulk=True) == 0.0
    assert acquire(rule, rate, bulk=True) > 0
    assert acquire(rule, rate) > 0, "one grant in the window: the cap holds for everyone"


def test_booked_slots_are_evenly_spaced_in_booking_order(rule):
    rate = parse_rate("20/s")
    step = interval(rate)
    slots = [reserve(rule, rate, within=60) for _ in range(10)]
    assert all(slot.held for slot in slots)
    gaps = [later.wait - earlier.wait for earlier, later in pairwise(slots)]
    # Each booking is made a little later than the last, so a gap is an interval less
    # the time between the two calls.
    assert all(step - 0.02 < gap <= step + 1e-6 for gap in gaps), gaps


def test_a_slot_beyond_the_horizon_is_not_booked_and_says_when_to_ask(rule):
    rate = parse_rate("10/s")
    step = interval(rate)
    booked = [reserve(rule, rate, within=0.5) for _ in range(5)]  # slots at 0 .. ~0.44 s
    refused = reserve(rule, rate, within=0.5)
    assert all(slot.held for slot in booked)
    assert not refused.held
    assert 0 < refused.wait <= step
    # Refused, it took nothing: the next booking gets the slot it was refused.
    later = reserve(rule, rate, within=5)
    assert later.held and later.wait == pytest.approx(5 * step, abs=0.02)


def test_a_run_of_slots_is_booked_at_once_and_spaced_like_single_bookings(rule):
    rate = parse_rate("20/s")
    step = interval(rate)
    waits = rate_limits.reserve_many(rule, rate, within=60, count=5)
    assert len(waits) == 5
    assert [b - a for a, b in pairwise(waits)] == pytest.approx([step] * 4, abs=1e-5)
    after = reserve(rule, rate, within=60)
    assert after.held and after.wait == pytest.approx(waits[-1] + step, abs=0.02)


def test_free_slots_are_counted_without_booking_and_match_what_booking_gets(rule):
    rate = parse_rate("10/s")
    step = interval(rate)
    free = rate_limits.free_slots(rule, rate, within=0.5)
    assert free == int(0.5 // step) + 1
    assert rate_limits.free_slots(rule, rate, within=0.5) == free, "counting books nothing"
    booked = rate_limits.reserve_many(rule, rate, within=0.5, count=100)
    assert len(booked) in (free - 1, free)  # a slot may have passed between the two calls
    assert rate_limits.free_slots(rule, rate, within=0.5) == 0
    assert rate_limits.reserve_many(rule, rate, within=0.5, count=1) == []


def test_no_slot_is_booked_sooner_than_the_lead(rule):
    rate = parse_rate("10/s")
    assert reserve(rule, rate, within=5, lead=0.3).wait >= 0.3 - 0.01
    first = rate_limits.reserve_many(rule, rate, within=5, count=3, lead=0.3)[0]
    assert first >= 0.3 - 0.01
    assert rate_limits.free_slots(rule, rate, within=0.2, lead=0.3) == 0


def test_concurrent_bookings_never_share_a_slot(rule):
    rate = parse_rate("100/s")
    step = interval(rate)
    started = time.time()

    def book(_: int) -> float:
        slot = reserve(rule, rate, within=60)
        assert slot.held
        return time.time() + slot.wait

    with ThreadPoolExecutor(8) as pool:
        instants = sorted(pool.map(book, range(200)))
    # 200 distinct slots one interval apart span 199 intervals from the first booking.
    assert instants[-1] - started >= 199 * step - 0.05
    assert instants[-1] - started <= 199 * step + 0.5


def test_a_widened_window_grants_the_rate_and_no_more_until_its_oldest_grant_leaves(rule):
    rate = parse_rate("5/s")
    waits = [rate_limits.acquire_with_margin(rule, rate, margin=0.5) for _ in range(6)]
    assert waits[:5] == [0.0] * 5
    assert 1.0 < waits[5] <= 1.5, "the oldest grant leaves 1.5 s after it, not 1 s"


def test_a_grant_is_refused_past_the_period_until_the_margin_has_passed_too(rule):
    rate = parse_rate("1/s")
    assert rate_limits.acquire_with_margin(rule, rate, margin=0.5) == 0.0
    time.sleep(1.0)
    wait = rate_limits.acquire_with_margin(rule, rate, margin=0.5)
    assert 0 < wait <= 0.5, "a period has passed, the margin not yet"
    time.sleep(wait + 0.01)
    assert rate_limits.acquire_with_margin(rule, rate, margin=0.5) == 0.0


def test_concurrent_grants_in_a_widened_window_never_exceed_the_rate(rule):
    rate = parse_rate("10/s")
    with ThreadPoolExecutor(8) as pool:
        waits = list(
            pool.map(lambda _: rate_limits.acquire_with_margin(rule, rate, margin=0.1), range(40))
        )
    assert waits.count(0.0) == 10
    assert all(0 < wait <= 1.1 for wait in waits if wait)


def test_a_call_whose_slot_frees_within_a_moment_waits_for_it_where_it_is(rule):
    rate = parse_rate("2/s")
    assert acquire(rule, rate) == acquire(rule, rate) == 0.0  # the window is full
    freed_at = time.time() + 1.0
    time.sleep(0.9)

    assert rate_limits.waiting(lambda: acquire(rule, rate), at_most=0.2) == 0.0
    assert time.time() >= freed_at - 0.005, "granted as the slot freed, not before"


def test_a_call_whose_slot_frees_later_than_it_may_wait_is_told_when_without_waiting(rule):
    rate = parse_rate("1/s")
    assert acquire(rule, rate) == 0.0
    began = time.monotonic()

    wait = rate_limits.waiting(lambda: acquire(rule, rate), at_most=0.2)

    assert 0.8 < wait <= 1.0
    assert time.monotonic() - began < 0.1, "it did not sleep"
