"""The notification retry schedule (notify/retry.py): the waits, the give-up instant and
how long an alert is kept trying, as pure functions of integers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hotline.escalation.engine import Timing
from hotline.notify.retry import (
    FIRST_RETRY_MS,
    KEEP_TRYING_MS,
    MAX_RETRY_MS,
    keep_until_ms,
    next_attempt_ms,
    retry_delay_ms,
    turns_ms,
)

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
INT64_MAX = 2**63 - 1  # the BigInteger columns next_at and retry_until


def test_the_waits_double_from_one_second_to_a_minute() -> None:
    assert [retry_delay_ms(n) // 1000 for n in range(1, 11)] \
        == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert retry_delay_ms(0) == retry_delay_ms(-5) == FIRST_RETRY_MS  # never below the first


def test_a_row_is_retried_up_to_retry_until_and_the_last_try_is_at_it() -> None:
    until = 10_000
    times, at, failures = [], 0, 0
    while True:
        failures += 1
        nxt = next_attempt_ms(failures, at, until)
        if nxt is None:
            break
        times.append(nxt)
        at = nxt
    assert times == [1_000, 3_000, 7_000, 10_000]  # 15 s would be past 10 s: tried at 10 s
    assert next_attempt_ms(1, until, until) is None
    assert next_attempt_ms(1, until + 1, until) is None  # a row found late: one try, then no more


def test_a_three_minute_outage_is_outlasted() -> None:
    """The fault this schedule mends: 8 attempts over ~2 min gave up on a 3-minute outage."""
    at, failures, until = 0, 0, keep_until_ms(0)
    while at < 3 * MINUTE_MS:
        failures += 1
        nxt = next_attempt_ms(failures, at, until)
        assert nxt is not None
        at = nxt
    assert (failures, at) == (8, 183_000)  # 1+2+4+8+16+32+60+60 s: the 9th attempt at 183 s


def test_an_alert_is_kept_an_hour_or_until_the_next_step_has_had_its_turn() -> None:
    assert KEEP_TRYING_MS == HOUR_MS
    assert keep_until_ms(1_000) == 1_000 + HOUR_MS
    assert keep_until_ms(1_000, (2 * MINUTE_MS, 5 * MINUTE_MS)) == 1_000 + HOUR_MS
    assert keep_until_ms(1_000, (40 * MINUTE_MS, 50 * MINUTE_MS)) == 1_000 + 90 * MINUTE_MS


def test_turns_of_a_finite_chain() -> None:
    timing = Timing.of([120_000, 300_000, 600_000], None)
    assert turns_ms(timing, 0) == (120_000, 300_000)
    assert turns_ms(timing, 1) == (300_000, 600_000)
    assert turns_ms(timing, 2) == (600_000,)  # the last step: nothing rings after it


def test_turns_of_a_repeating_chain() -> None:
    timing = Timing.of([120_000, 300_000], 3 * HOUR_MS)
    assert turns_ms(timing, 0) == (120_000, 300_000)
    assert turns_ms(timing, 1) == (300_000, 3 * HOUR_MS)  # next: the first repeat
    assert turns_ms(timing, 7) == (3 * HOUR_MS, 3 * HOUR_MS)
    assert keep_until_ms(0, turns_ms(timing, 7)) == 6 * HOUR_MS


@given(st.integers(min_value=1, max_value=10**7) | st.integers(min_value=1, max_value=10**30))
def test_every_wait_is_positive_capped_and_cheap(failures: int) -> None:
    delay = retry_delay_ms(failures)
    assert isinstance(delay, int)
    assert 0 < delay <= MAX_RETRY_MS
    assert delay == min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** min(failures - 1, 64))
    assert retry_delay_ms(failures + 1) >= delay  # never shrinks


@given(failures=st.integers(min_value=1, max_value=10**7),
       now=st.integers(min_value=0, max_value=INT64_MAX),
       until=st.integers(min_value=0, max_value=INT64_MAX))
def test_the_next_try_never_passes_retry_until_nor_overflows(failures: int, now: int,
                                                             until: int) -> None:
    nxt = next_attempt_ms(failures, now, until)
    if now >= until:
        assert nxt is None
    else:
        assert nxt is not None
        assert now < nxt <= until <= INT64_MAX
        assert nxt - now <= MAX_RETRY_MS


def _offset_ms(attempts: int) -> int:
    """When the ``attempts``-th retry falls (after an alert at 0 that never gets through
    and is kept for ever): the waits summed, in closed form."""
    doubling = 0
    total = 0
    while doubling < attempts and FIRST_RETRY_MS << doubling < MAX_RETRY_MS:
        total += FIRST_RETRY_MS << doubling
        doubling += 1
    return total + (attempts - doubling) * MAX_RETRY_MS


@given(attempts=st.integers(min_value=1, max_value=10**7),
       created=st.integers(min_value=0, max_value=2**53))
def test_the_cumulative_schedule_reaches_retry_until_within_ten_million_attempts(
        attempts: int, created: int) -> None:
    """Whatever retry_until the alert has, up to where 10**7 attempts reach, the schedule
    gets there: the walk from retry to retry ends exactly at retry_until."""
    until = created + _offset_ms(attempts)
    assert until <= INT64_MAX
    # Walk the last stretch for real (the waits are all at the cap by then), from the
    # retry before the last few, so that 10**7 attempts stay fast to check.
    start = max(1, attempts - 100)
    at = created + _offset_ms(start - 1)
    failures = start - 1
    seen = 0
    while True:
        failures += 1
        nxt = next_attempt_ms(failures, at, until)
        if nxt is None:
            break
        assert nxt - at == retry_delay_ms(failures)  # the closed form is the same walk
        at = nxt
        seen += 1
    assert at == until
    assert failures == attempts + 1  # the attempt at retry_until is the last one
    assert seen == attempts - start + 1


@given(span=st.integers(min_value=0, max_value=3 * 24 * HOUR_MS),
       created=st.integers(min_value=0, max_value=2**53))
def test_a_walk_from_creation_ends_at_retry_until(span: int, created: int) -> None:
    until = created + span
    at, failures, gaps = created, 0, []
    while (nxt := next_attempt_ms(failures + 1, at, until)) is not None:
        failures += 1
        gaps.append(nxt - at)
        at = nxt
    assert at == until
    assert all(0 < gap <= MAX_RETRY_MS for gap in gaps)
