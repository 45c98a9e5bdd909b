"""The escalation engine against a model that enumerates every ring time by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.escalation.engine import Timing, plan

waits = st.lists(st.integers(1, 10_000), min_size=1, max_size=6)
repeats = st.one_of(st.none(), st.integers(1, 5_000))


def model_due_times(timing: Timing, start: int, horizon: int) -> list[int]:
    """Ring k's due time for every ring due by ``horizon``, by walking the chain."""
    dues: list[int] = []
    t = start
    for wait in timing.waits_ms:
        if t > horizon:
            return dues
        dues.append(t)
        t += wait
    if timing.repeat_every_ms is not None:
        while t <= horizon:
            dues.append(t)
            t += timing.repeat_every_ms
    return dues


@settings(max_examples=400, deadline=None)
@given(waits=waits, repeat=repeats, start=st.integers(0, 10**12),
       gaps=st.lists(st.integers(0, 30_000), min_size=1, max_size=25))
def test_any_schedule_of_wake_ups_rings_each_step_once_in_order_never_early(
        waits: list[int], repeat: int | None, start: int, gaps: list[int]) -> None:
    timing = Timing.of(waits, repeat)
    now, next_ring, fired, ended = start, 0, [], False
    previous_now = start - 1
    for gap in gaps:
        now += gap
        if ended:
            break
        p = plan(timing, start, next_ring, now)
        for ring in p.rings:
            due = start + timing.offset(ring)
            assert due <= now, "a ring fired before it was due"
            fired.append((ring, due, now, previous_now))
        assert p.next_ring == (p.rings[-1] + 1 if p.rings else next_ring)
        next_ring = p.next_ring
        ended = p.unanswered
        if p.next_due_ms is not None:
            assert p.next_due_ms > now, "the next wake-up is in the future"
        previous_now = now
    dues = model_due_times(timing, start, now)
    rung = [ring for ring, *_ in fired]
    assert rung == sorted(set(rung)), "rings are strictly increasing: none twice"
    # every step of the chain that fell due was rung: no step skipped
    first_steps_due = [k for k, due in enumerate(dues) if k < timing.steps]
    assert [k for k in rung if k < timing.steps] == first_steps_due
    # a repeat is rung only when due, and after an outage only the latest one
    for ring, due, fired_at, woke_before in fired:
        assert due == dues[ring]
        if ring >= timing.steps:
            assert ring + 1 >= len(dues) or dues[ring + 1] > fired_at
        else:
            assert woke_before < due, "a step rang at the first wake-up after it fell due"
    # a finite chain ends unanswered exactly when its last wait has passed
    end = timing.end_offset()
    assert ended == (end is not None and start + end <= now)


@given(waits=waits, repeat=repeats, start=st.integers(0, 10**12), late=st.integers(0, 10**6))
def test_waking_once_at_any_time_catches_up_everything_due(
        waits: list[int], repeat: int | None, start: int, late: int) -> None:
    timing = Timing.of(waits, repeat)
    p = plan(timing, start, 0, start + late)
    steps_due = [k for k in range(timing.steps) if timing.offset(k) <= late]
    assert [r for r in p.rings if r < timing.steps] == steps_due
    assert len([r for r in p.rings if r >= timing.steps]) <= 1


def test_the_scenario_chain_rings_principal_deputy_then_duty_officer_every_minute() -> None:
    minute = 60_000
    timing = Timing.of([2 * minute, 2 * minute, minute], minute)
    start = 1_000_000
    p0 = plan(timing, start, 0, start)
    assert (p0.rings, p0.next_due_ms) == ((0,), start + 2 * minute)
    p1 = plan(timing, start, 1, start + 2 * minute)
    assert (p1.rings, p1.next_due_ms) == ((1,), start + 4 * minute)
    p2 = plan(timing, start, 2, start + 4 * minute + 5)
    assert (p2.rings, p2.next_due_ms) == ((2,), start + 5 * minute)
    p3 = plan(timing, start, 3, start + 5 * minute)
    assert [timing.step_of(r) for r in p3.rings] == [2]
    assert p3.next_due_ms == start + 6 * minute
    # an outage of ten minutes after the deputy rang: duty officer once, then on the grid
    late = plan(timing, start, 2, start + 14 * minute + 1)
    assert [timing.step_of(r) for r in late.rings] == [2, 2]
    assert late.next_due_ms == start + 15 * minute


def test_a_finite_chain_ends_unanswered_after_its_last_wait() -> None:
    timing = Timing.of([1000, 500], None)
    assert plan(timing, 0, 2, 1499) == plan(timing, 0, 2, 1499)
    assert not plan(timing, 0, 2, 1499).unanswered
    assert plan(timing, 0, 2, 1499).next_due_ms == 1500
    done = plan(timing, 0, 2, 1500)
    assert done.unanswered
    assert done.next_due_ms is None
    assert done.rings == ()


@pytest.mark.parametrize(("waits", "repeat"), [((), None), ((0,), None), ((5,), 0), ((-1,), 5)])
def test_nonsense_timings_are_refused(waits: tuple[int, ...], repeat: int | None) -> None:
    with pytest.raises(ValueError, match=r"step|repeat"):
        Timing(waits, repeat)
