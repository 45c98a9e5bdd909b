"""The DST cases other on-call tools got wrong, reproduced for Hotline, over whole years.

- a weekly rotation in America/Chicago and a daily one in Europe/London across both
  changes: no hour of gap, no hour of overlap, hand-overs at the same local time;
- an override over a shift that changes afterwards stays where it was put;
- the worked examples of docs/schedules.md (Europe/Warsaw, spring and autumn).
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from hotline.schedules import (
    Layer,
    Override,
    Restriction,
    Schedule,
    Shift,
    Turn,
    final_schedule,
    holders_at,
    to_local,
    to_ms,
)

HOUR = 3_600_000


def ms(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *,
       fold: int = 0) -> int:
    local = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)
    return int(local.timestamp() * 1000)


def year_of(schedule: Schedule, overrides: list[Override] | None = None) -> list[Shift]:
    zone = schedule.zone
    return final_schedule(schedule, overrides or [], ms(zone, 2026, 1, 1),
                          ms(zone, 2027, 1, 1))


def assert_contiguous(shifts: list[Shift]) -> None:
    for a, b in itertools.pairwise(shifts):
        assert a.until_ms == b.from_ms, f"a gap or overlap between {a} and {b}"


def test_weekly_rotation_in_chicago_hands_over_monday_0900_all_year() -> None:
    layer = Layer("primary", ("ann", "bob", "cy"), Turn(1, "weeks", None), time(9),
                  date(2025, 12, 29))  # a Monday
    shifts = year_of(Schedule("ops", "America/Chicago", (layer,)))
    assert_contiguous(shifts)
    tz = ZoneInfo("America/Chicago")
    inner = shifts[1:-1]
    assert len(inner) == 51  # 5 January to 28 December; the ends are cut by the range
    for s in inner:
        start = to_local(s.from_ms, tz)
        assert (start.weekday(), start.time()) == (0, time(9)), start
        assert s.holders
        assert s.source == "layer:primary"
    lengths = sorted((s.until_ms - s.from_ms) // HOUR for s in inner)
    # The week of 8 March loses an hour, the week of 1 November gains one; no other changes.
    assert lengths == [167] + [168] * 49 + [169]
    spring = next(s for s in inner if (s.until_ms - s.from_ms) // HOUR == 167)
    autumn = next(s for s in inner if (s.until_ms - s.from_ms) // HOUR == 169)
    assert to_local(spring.from_ms, tz).date() == date(2026, 3, 2)
    assert to_local(autumn.from_ms, tz).date() == date(2026, 10, 26)
    # Everyone takes turns in order, without skipping anyone at a change.
    names = [s.holders[0] for s in shifts]
    assert all(names[i + 1] == ("ann", "bob", "cy")[(("ann", "bob", "cy").index(names[i]) + 1)
                                                   % 3] for i in range(len(names) - 1))


@pytest.mark.parametrize(("handover", "spring_len", "autumn_len"),
                         [(time(9), 23, 25), (time(1, 30), 23, 25), (time(0), 23, 25)])
def test_daily_rotation_in_london_has_no_hour_gap_or_overlap(
        handover: time, spring_len: int, autumn_len: int) -> None:
    layer = Layer("daily", ("ann", "bob"), Turn(1, "days", None), handover, date(2026, 1, 1))
    shifts = year_of(Schedule("ops", "Europe/London", (layer,)))
    assert_contiguous(shifts)
    tz = ZoneInfo("Europe/London")
    inner = [s for s in shifts if s.source != "gap"][1:-1]  # whole turns only
    minutes = sorted((s.until_ms - s.from_ms) // 60_000 for s in inner)
    assert sum(minutes) % (24 * 60) == 0  # the year's two changes cancel out
    full = len(inner) - 3 if handover == time(1, 30) else len(inner) - 2
    if handover == time(1, 30):
        # 01:30 does not exist on 29 March: that hand-over moves to 02:00 BST, the end of
        # the gap, so the watches either side are 30 minutes shorter. 01:30 happens twice
        # on 25 October: the hand-over is at the first, the watch after it is 25 hours.
        assert minutes == [23 * 60 + 30] * 2 + [24 * 60] * full + [25 * 60]
        moved = [s for s in inner if to_local(s.from_ms, tz).time() != handover]
        assert [to_local(s.from_ms, tz) for s in moved] == [datetime(2026, 3, 29, 2, 0)]
    else:
        assert minutes == [spring_len * 60] + [24 * 60] * full + [autumn_len * 60]
        assert all(to_local(s.from_ms, tz).time() == handover for s in inner)
    assert all(to_local(s.from_ms, tz).fold == 0 for s in inner)


def test_override_over_a_changed_shift_stays_where_it_was_put() -> None:
    zone = "Europe/Warsaw"
    before = Layer("watch", ("p1", "p2", "p3", "p4"), Turn(12, "hours", None), time(8),
                   date(2026, 1, 5))
    # Someone covers the night watch across the autumn change, from 20:00 to 08:00 local.
    cover = Override("o-1", "duty", "p9", ms(zone, 2026, 10, 24, 20), ms(zone, 2026, 10, 25, 8))
    original = Schedule("duty", zone, (before,))
    shifts = final_schedule(original, [cover], ms(zone, 2026, 10, 24), ms(zone, 2026, 10, 27))
    (held,) = [s for s in shifts if s.holders == ("p9",)]
    assert (held.from_ms, held.until_ms) == (cover.from_ms, cover.until_ms)
    assert held.until_ms - held.from_ms == 13 * HOUR
    # The layer is edited: new order, hand-over moved to 07:00, 8-hour watches.
    after = Layer("watch", ("p4", "p2", "p1"), Turn(8, "hours", None), time(7),
                  date(2026, 10, 1))
    edited = Schedule("duty", zone, (after,))
    shifts = final_schedule(edited, [cover], ms(zone, 2026, 10, 24), ms(zone, 2026, 10, 27))
    (held,) = [s for s in shifts if s.holders == ("p9",)]
    assert (held.from_ms, held.until_ms, held.source) == \
        (cover.from_ms, cover.until_ms, "override:o-1")
    assert holders_at(edited, [cover], cover.from_ms - 1) != ("p9",)
    assert holders_at(edited, [cover], cover.until_ms) != ("p9",)


def test_warsaw_12_hour_watches_in_spring_and_autumn() -> None:
    """The worked example of docs/schedules.md."""
    zone, tz = "Europe/Warsaw", ZoneInfo("Europe/Warsaw")
    layer = Layer("watch", ("ccp-1", "ccp-2", "ccp-3", "ccp-4"), Turn(12, "hours", None),
                  time(8), date(2026, 1, 5))
    schedule = Schedule("ccp-do", zone, (layer,))
    for day, night_hours in ((date(2026, 3, 28), 11), (date(2026, 10, 24), 13)):
        shifts = final_schedule(schedule, [], ms(zone, day.year, day.month, day.day, 8),
                                ms(zone, day.year, day.month, day.day + 2, 8))
        assert [to_local(s.from_ms, tz).time() for s in shifts] == \
            [time(8), time(20), time(8), time(20)]
        assert [(s.until_ms - s.from_ms) // HOUR for s in shifts] == [12, night_hours, 12, 12]


def test_the_skipped_and_the_repeated_hour_in_warsaw() -> None:
    tz = ZoneInfo("Europe/Warsaw")
    # 02:30 on 29 March 2026 does not exist: it becomes 03:00 CEST, the end of the gap.
    assert to_ms(datetime(2026, 3, 29, 2, 30), tz) == ms("Europe/Warsaw", 2026, 3, 29, 3)
    assert to_ms(datetime(2026, 3, 29, 2, 0), tz) == ms("Europe/Warsaw", 2026, 3, 29, 3)
    # 02:30 on 25 October 2026 happens twice: the first (CEST, 00:30 UTC).
    first = to_ms(datetime(2026, 10, 25, 2, 30), tz)
    assert first == ms("Europe/Warsaw", 2026, 10, 25, 2, 30, fold=0)
    assert to_local(first + HOUR, tz) == datetime(2026, 10, 25, 2, 30, fold=1)
    assert to_ms(to_local(first + HOUR, tz), tz) == first + HOUR


def test_a_night_restriction_across_both_changes_keeps_its_local_hours() -> None:
    zone, tz = "Europe/Warsaw", ZoneInfo("Europe/Warsaw")
    night = Layer("night", ("n1", "n2"), Turn(1, "weeks", None), time(22), date(2026, 1, 5),
                  restrictions=(Restriction(frozenset(range(7)), time(22), time(6)),))
    day = Layer("day", ("d1",), Turn(1, "days", None), time(6), date(2026, 1, 5))
    shifts = year_of(Schedule("duty", zone, (day, night)))
    assert_contiguous(shifts)
    for s in shifts[1:-1]:
        start = to_local(s.from_ms, tz).time()
        assert start == (time(22) if s.source == "layer:night" else time(6)), s
    nights = [s for s in shifts[1:-1] if s.source == "layer:night"]
    lengths = sorted((s.until_ms - s.from_ms) // HOUR for s in nights)
    assert lengths == [7] + [8] * (len(nights) - 2) + [9]
