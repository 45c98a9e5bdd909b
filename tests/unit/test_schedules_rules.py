"""The rules of docs/schedules.md, one example each, on a UTC schedule (DST is elsewhere)."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from hotline.schedules import (
    AcceptedGap,
    Layer,
    Override,
    Restriction,
    Schedule,
    Shift,
    Turn,
    final_schedule,
    gaps,
    hand_overs,
    holders_at,
    unaccepted_gaps,
    upcoming_gaps,
)
from hotline.schedules.final import MAX_RANGE_MS

H = 3_600_000
DAY0 = 1_780_272_000_000  # 2026-06-01T00:00:00Z, a Monday
WEEKDAYS = frozenset(range(5))

BASE = Layer("base", ("b1", "b2"), Turn(1, "days", None), time(0), date(2026, 5, 2))
DAYTIME = Layer("day", ("d1",), Turn(1, "weeks", None), time(0), date(2026, 5, 4),
                restrictions=(Restriction(WEEKDAYS, time(9), time(17)),))
SCHEDULE = Schedule("duty", "UTC", (BASE, DAYTIME))


def at(hours: float) -> int:
    return DAY0 + int(hours * H)


def spans(shifts: list[Shift]) -> list[tuple[float, float, tuple[str, ...], str]]:
    return [((s.from_ms - DAY0) / H, (s.until_ms - DAY0) / H, s.holders, s.source)
            for s in shifts]


def test_a_higher_layer_wins_where_it_has_someone() -> None:
    assert spans(final_schedule(SCHEDULE, [], at(0), at(24))) == [
        (0, 9, ("b1",), "layer:base"),
        (9, 17, ("d1",), "layer:day"),
        (17, 24, ("b1",), "layer:base"),
    ]


def test_an_override_wins_over_every_layer() -> None:
    cover = Override("o1", "duty", "x", at(16), at(18))
    assert spans(final_schedule(SCHEDULE, [cover], at(8), at(20))) == [
        (8, 9, ("b1",), "layer:base"),
        (9, 16, ("d1",), "layer:day"),
        (16, 18, ("x",), "override:o1"),
        (18, 20, ("b1",), "layer:base"),
    ]


def test_overlapping_overrides_hold_the_role_together_in_order_of_start() -> None:
    first = Override("late", "duty", "y", at(11), at(13))
    second = Override("early", "duty", "x", at(10), at(12))
    assert spans(final_schedule(SCHEDULE, [first, second], at(10), at(14))) == [
        (10, 11, ("x",), "override:early"),
        (11, 12, ("x", "y"), "override:early,late"),
        (12, 13, ("y",), "override:late"),
        (13, 14, ("d1",), "layer:day"),
    ]


def test_unavailable_hands_the_role_to_the_next_level_down() -> None:
    away = Override("ill", "duty", "d1", at(12), at(14), unavailable=True)
    assert spans(final_schedule(SCHEDULE, [away], at(11), at(15))) == [
        (11, 12, ("d1",), "layer:day"),
        (12, 14, ("b1",), "layer:base"),  # the lower layer answers
        (14, 15, ("d1",), "layer:day"),
    ]
    both = [away, Override("ill-2", "duty", "b1", at(13), at(15), unavailable=True)]
    shifts = final_schedule(SCHEDULE, both, at(12), at(16))
    assert [(s.holders, s.source) for s in shifts] == [
        (("b1",), "layer:base"), ((), "gap"), (("d1",), "layer:day")]
    assert holders_at(SCHEDULE, both, at(13.5)) == ()


def test_unavailable_wins_over_taking_the_role_at_the_same_time() -> None:
    take = Override("take", "duty", "x", at(10), at(12))
    away = Override("away", "duty", "x", at(11), at(12), unavailable=True)
    assert spans(final_schedule(SCHEDULE, [take, away], at(10), at(12))) == [
        (10, 11, ("x",), "override:take"),
        (11, 12, ("d1",), "layer:day"),
    ]


def test_the_roster_is_the_lowest_layer_and_may_have_several_people() -> None:
    def roster(t: int) -> tuple[str, ...]:
        return ("r1", "r2") if at(20) <= t < at(22) else ()

    night_only = Schedule("duty", "UTC", (DAYTIME,))
    shifts = final_schedule(night_only, [], at(16), at(23), roster, base_edges=[at(20), at(22)])
    assert spans(shifts) == [
        (16, 17, ("d1",), "layer:day"),
        (17, 20, (), "gap"),
        (20, 22, ("r1", "r2"), "roster"),
        (22, 23, (), "gap"),
    ]
    away = Override("a", "duty", "r1", at(21), at(22), unavailable=True)
    assert holders_at(night_only, [away], at(21), roster, base_edges=[at(20), at(22)]) == ("r2",)


def test_without_a_schedule_only_the_roster_and_overrides_count() -> None:
    cover = Override("o", "duty", "x", at(1), at(2))
    other = Override("p", "other-role", "y", at(0), at(3))
    assert spans(final_schedule(None, [cover, other], at(0), at(3), role="duty")) == [
        (0, 1, (), "gap"), (1, 2, ("x",), "override:o"), (2, 3, (), "gap")]
    assert [g.role for g in gaps(None, [cover], at(0), at(3), role="duty")] == ["duty"] * 2


def test_accepted_gaps_are_cut_out_of_the_gaps() -> None:
    day_only = Schedule("duty", "UTC", (DAYTIME,))
    shifts = final_schedule(day_only, [], at(0), at(48))
    assert len(unaccepted_gaps(day_only, shifts)) == 3
    assert unaccepted_gaps(Schedule("duty", "UTC", (DAYTIME,), True), shifts) == []
    partly = Schedule("duty", "UTC", (DAYTIME,), (
        AcceptedGap(datetime(2026, 6, 1, 17), datetime(2026, 6, 2, 8)),))
    assert spans(unaccepted_gaps(partly, shifts)) == [
        (0, 9, (), "gap"), (32, 33, (), "gap"), (41, 48, (), "gap")]


def test_an_empty_range_has_no_shifts_and_a_huge_one_is_refused() -> None:
    assert final_schedule(SCHEDULE, [], at(5), at(5)) == []
    with pytest.raises(ValueError, match="longer than the limit"):
        final_schedule(SCHEDULE, [], at(0), at(0) + MAX_RANGE_MS + 1)


def test_an_override_must_name_an_operator_and_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="names no operator"):
        Override("o", "duty", None, at(0), at(1), unavailable=True)
    with pytest.raises(ValueError, match="ends"):
        Override("o", "duty", "x", at(1), at(1))


def test_upcoming_gaps_include_overrides_and_respect_accepted_spans() -> None:
    whole = Schedule("duty", "UTC", (BASE,))
    away = [Override("a", "duty", "b1", at(30), at(32), unavailable=True),
            Override("b", "duty", "b2", at(31), at(33), unavailable=True)]
    # 1 June is b1's day, 2 June b2's: b1 away 06:00-08:00 on the 2nd changes nothing,
    # b2 away 07:00-09:00 empties the role for two hours.
    assert spans(upcoming_gaps(whole, away, at(24), 24 * H)) == [(31, 33, (), "gap")]
    accepted = Schedule("duty", "UTC", (BASE,), (
        AcceptedGap(datetime(2026, 6, 2, 7), datetime(2026, 6, 2, 8)),))
    assert spans(upcoming_gaps(accepted, away, at(24), 24 * H)) == [(32, 33, (), "gap")]
    assert upcoming_gaps(whole, away, at(0), 24 * H) == []


def test_hand_overs_are_changes_of_holders() -> None:
    cover = Override("o", "duty", "d1", at(17), at(18))  # d1 stays on for an hour
    shifts = final_schedule(SCHEDULE, [cover], at(8), at(20))
    assert [((t - DAY0) / H, a.holders, b.holders) for t, a, b in hand_overs(shifts)] == [
        (9, ("b1",), ("d1",)),
        (18, ("d1",), ("b1",)),  # not at 17: the same person, only the source changed
    ]
