"""The lock-out back-off: free attempts, then doubling, then a cap."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hotline.accounts.lockout import LockoutPolicy, lock_seconds

policies = st.builds(LockoutPolicy, free_attempts=st.integers(0, 20),
                     base_seconds=st.floats(0, 10_000, allow_nan=False),
                     max_seconds=st.floats(0, 1e7, allow_nan=False))
failures = st.integers(0, 5000)


@given(policies, failures)
def test_nothing_is_locked_below_the_free_attempts(policy: LockoutPolicy, n: int) -> None:
    if n < policy.free_attempts:
        assert lock_seconds(n, policy) == 0


@given(policies, failures, failures)
def test_more_failures_never_lock_for_less(policy: LockoutPolicy, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert lock_seconds(low, policy) <= lock_seconds(high, policy)


@given(policies, failures)
def test_the_lock_never_exceeds_the_cap(policy: LockoutPolicy, n: int) -> None:
    assert 0 <= lock_seconds(n, policy) <= policy.max_seconds


@given(policies, st.integers(0, 40))
def test_each_failure_past_the_free_ones_doubles_the_lock_until_the_cap(
        policy: LockoutPolicy, extra: int) -> None:
    n = policy.free_attempts + extra
    expected = min(policy.base_seconds * 2 ** extra, policy.max_seconds)
    assert lock_seconds(n, policy) == expected


def test_the_default_policy() -> None:
    policy = LockoutPolicy()
    assert [lock_seconds(n, policy) for n in range(4, 9)] == [0, 30, 60, 120, 240]
    assert lock_seconds(12, policy) == 3600
    assert lock_seconds(10_000, policy) == 3600
