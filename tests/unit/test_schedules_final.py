"""The final schedule against a brute-force reference, over zones with and without DST.

The reference evaluates every minute on its own and shares nothing with the code under
test but the model: it reads the zone's wall clock at each minute (``datetime.fromtimestamp``)
and keeps its running maximum, the *high-water mark*. By the documented rule, a local time
``L`` has happened at minute ``t`` exactly when the high-water mark at ``t`` is ``>= L``,
so every layer question (has the layer started, which turn, is a restriction window open)
is a plain comparison of naive local times there: no conversion of local times to
instants, no fold, no bisection.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from hotline.schedules import (
    Layer,
    Override,
    Restriction,
    Schedule,
    Shift,
    Turn,
    final_schedule,
    gaps,
    holders_at,
    to_local,
)

MIN = 60_000
HOUR = 60 * MIN
ZONES = ("Europe/Warsaw", "Europe/Moscow", "America/New_York", "Europe/Kyiv", "Asia/Riyadh",
         # and two odd ones: a 30-minute change, and a 2-hour one
         "Australia/Lord_Howe", "Antarctica/Troll")
PEOPLE = ("a", "b", "c", "d", "e")
RRULES = ("FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,TH", "FREQ=HOURLY;INTERVAL=6",
          "FREQ=DAILY;INTERVAL=2", "FREQ=WEEKLY;COUNT=3")


def ms_of(aware: datetime) -> int:
    return int(aware.timestamp()) * 1000


@cache
def dst_days(zone: str, year: int = 2026) -> tuple[date, ...]:
    """The local days on which the zone's UTC offset changes in ``year`` (none without DST)."""
    tz = ZoneInfo(zone)
    days: list[date] = []
    day = date(year, 1, 1)
    while day.year == year:
        a = datetime(day.year, day.month, day.day, tzinfo=tz).utcoffset()
        nxt = day + timedelta(days=1)
        b = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).utcoffset()
        if a != b:
            days.append(day)
        day = nxt
    return tuple(days)


def offset_change(zone: str, day: date) -> int:
    """By how many minutes the zone's UTC offset changes on ``day``."""
    tz = ZoneInfo(zone)
    nxt = day + timedelta(days=1)
    before = datetime(day.year, day.month, day.day, tzinfo=tz).utcoffset()
    after = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).utcoffset()
    assert before is not None
    assert after is not None
    return (after - before) // timedelta(minutes=1)


# ================================================================== the reference

@dataclass
class Clock:
    """The zone's wall clock, minute by minute over ``[start, end)``, and its high-water mark."""

    start: int
    hw: list[datetime]

    @classmethod
    def over(cls, zone: str, start: int, end: int) -> Clock:
        tz = ZoneInfo(zone)
        hw: list[datetime] = []
        top: datetime | None = None
        for t in range(start, end, MIN):
            wall = datetime.fromtimestamp(t / 1000, tz).replace(tzinfo=None, fold=0)
            top = wall if top is None or wall > top else top
            hw.append(top)
        return cls(start, hw)

    def at(self, t: int) -> datetime:
        return self.hw[(t - self.start) // MIN]


def _naive(value: date | datetime, clock_time: time) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, clock_time)


def ref_layer(layer: Layer, hw: datetime, occurrences: list[datetime] | None) -> str | None:
    """Who ``layer`` names when the wall clock's high-water mark is ``hw``.

    ``occurrences`` are an RRULE layer's hand-overs (all of them up to past the range).
    """
    anchor = datetime.combine(_naive(layer.start, layer.handover).date(), layer.handover)
    if hw < _naive(layer.start, layer.handover):
        return None
    if layer.end is not None and hw >= _naive(layer.end, layer.handover):
        return None
    if layer.restrictions and not any(_in_window(r, hw) for r in layer.restrictions):
        return None
    n = len(layer.participants)
    if occurrences is None:
        size = {"hours": 60, "days": 24 * 60, "weeks": 7 * 24 * 60}[layer.turn.unit or ""]
        elapsed = (hw - anchor) // timedelta(minutes=1)
        return layer.participants[(elapsed // (size * layer.turn.length)) % n]
    passed = bisect.bisect_right(occurrences, hw)
    if passed == 0:
        return None
    if "COUNT" in (layer.turn.rrule or "") and passed == len(occurrences):
        return None  # a finite rule ends the layer at its last occurrence
    return layer.participants[(passed - 1) % n]


def _all_occurrences(layer: Layer, last: datetime) -> list[datetime] | None:
    if layer.turn.rrule is None:
        return None
    anchor = datetime.combine(_naive(layer.start, layer.handover).date(), layer.handover)
    found: list[datetime] = []
    for o in rrulestr(layer.turn.rrule, dtstart=anchor):
        if o > last and "COUNT" not in layer.turn.rrule:
            break
        found.append(o)
    return found


def _in_window(r: Restriction, hw: datetime) -> bool:
    for opened in (hw.date(), hw.date() - timedelta(days=1)):
        if opened.weekday() not in r.days:
            continue
        begin = datetime.combine(opened, r.start)
        end = datetime.combine(opened + timedelta(days=0 if r.end > r.start else 1), r.end)
        if begin <= hw < end:
            return True
    return False


def reference(schedule: Schedule, overrides: Sequence[Override], from_ms: int, until_ms: int,
              base: Callable[[int], tuple[str, ...]] | None) -> list[tuple[tuple[str, ...], str]]:
    """(holders, source) for every minute of ``[from_ms, until_ms)``."""
    clock = Clock.over(schedule.zone, from_ms - 3 * 24 * HOUR, until_ms)
    last = clock.at(until_ms - MIN) + timedelta(days=1)
    rules = [_all_occurrences(layer, last) for layer in schedule.layers]
    out: list[tuple[tuple[str, ...], str]] = []
    for t in range(from_ms, until_ms, MIN):
        hw = clock.at(t)
        now = [o for o in overrides if o.from_ms <= t < o.until_ms]
        away = [o.operator for o in now if o.unavailable]
        takers = sorted((o for o in now if not o.unavailable and o.operator not in away),
                        key=lambda o: (o.from_ms, o.id))
        if takers:
            names: list[str] = []
            for o in takers:
                if o.operator is not None and o.operator not in names:
                    names.append(o.operator)
            out.append((tuple(names), "override:" + ",".join(o.id for o in takers)))
            continue
        found = None
        for layer, occurrences in list(zip(schedule.layers, rules, strict=True))[::-1]:
            who = ref_layer(layer, hw, occurrences)
            if who is not None and who not in away:
                found = ((who,), f"layer:{layer.name}")
                break
        if found is None and base is not None:
            rest: tuple[str, ...] = ()
            for w in base(t):
                if w not in away and w not in rest:
                    rest += (w,)
            found = (rest, "roster") if rest else None
        out.append(found or ((), "gap"))
    return out


def per_minute(shifts: Sequence[Shift], from_ms: int,
               until_ms: int) -> list[tuple[tuple[str, ...], str]]:
    out: list[tuple[tuple[str, ...], str]] = []
    for s in shifts:
        out.extend([(s.holders, s.source)] * ((s.until_ms - s.from_ms) // MIN))
    assert len(out) == (until_ms - from_ms) // MIN
    return out


def check_shape(shifts: Sequence[Shift], from_ms: int, until_ms: int) -> None:
    """Sorted, contiguous, covering the range; neighbours differ; a gap has nobody."""
    assert shifts[0].from_ms == from_ms
    assert shifts[-1].until_ms == until_ms
    for a, b in itertools.pairwise(shifts):
        assert a.until_ms == b.from_ms
        assert (a.holders, a.source) != (b.holders, b.source)
    for s in shifts:
        assert s.from_ms < s.until_ms
        assert (s.source == "gap") == (s.holders == ())


# ================================================================== strategies

minutes = st.sampled_from([0, 15, 30, 45])
clocks = st.builds(time, st.integers(0, 23), minutes)


@st.composite
def turns(draw: st.DrawFn) -> Turn:
    kind = draw(st.sampled_from(["hours", "days", "weeks", "rrule"]))
    if kind == "hours":
        return Turn(draw(st.sampled_from([1, 2, 3, 5, 6, 7, 8, 12, 24, 36])), "hours", None)
    if kind == "days":
        return Turn(draw(st.integers(1, 3)), "days", None)
    if kind == "weeks":
        return Turn(draw(st.integers(1, 2)), "weeks", None)
    return Turn(0, None, draw(st.sampled_from(RRULES)))


@st.composite
def layers(draw: st.DrawFn, day: date, index: int) -> Layer:
    people = tuple(draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4,
                                 unique=True)))
    handover = draw(clocks)
    start_day = day - timedelta(days=draw(st.integers(0, 20)))
    start: date | datetime = start_day
    if draw(st.booleans()):
        start = datetime.combine(start_day, draw(clocks))
    end: date | datetime | None = None
    if draw(st.booleans()):
        end_day = day + timedelta(days=draw(st.integers(0, 2)))
        end = datetime.combine(end_day, draw(clocks)) if draw(st.booleans()) else end_day
        assume(_naive(end, handover) > _naive(start, handover))
    restrictions = tuple(draw(st.lists(st.builds(
        Restriction, st.frozensets(st.integers(0, 6), min_size=1), clocks, clocks),
        max_size=2)))
    return Layer(f"L{index}", people, draw(turns()), handover, start, end, restrictions)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Schedule, list[Override], int, int, Callable[
        [int], tuple[str, ...]] | None, list[int]]:
    zone = draw(st.sampled_from(ZONES))
    special = dst_days(zone)
    day = draw(st.sampled_from(special)) if special and draw(st.booleans()) else \
        date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 364)))
    tz = ZoneInfo(zone)
    from_ms = ms_of(datetime.combine(day - timedelta(days=1), time(), tz))
    until_ms = from_ms + draw(st.integers(24, 72)) * HOUR
    n = draw(st.integers(1, 3))
    schedule = Schedule("duty", zone, tuple(draw(layers(day, i)) for i in range(n)))
    span = (until_ms - from_ms) // MIN
    overrides: list[Override] = []
    for i in range(draw(st.integers(0, 3))):
        a = from_ms + draw(st.integers(-60, span)) * MIN
        b = a + draw(st.integers(1, 36 * 60)) * MIN
        overrides.append(Override(f"o{i}", "duty", draw(st.sampled_from(PEOPLE)), a, b,
                                  draw(st.booleans())))
    base = None
    edges: list[int] = []
    if draw(st.booleans()):
        windows = [(from_ms + draw(st.integers(0, span)) * MIN, draw(st.sampled_from(PEOPLE)))
                   for _ in range(draw(st.integers(0, 2)))]
        always = tuple(draw(st.lists(st.sampled_from(PEOPLE), max_size=2, unique=True)))

        def base(t: int) -> tuple[str, ...]:
            return always + tuple(who for start, who in windows
                                  if start <= t < start + 6 * HOUR)
        edges = [e for start, _ in windows for e in (start, start + 6 * HOUR)]
    return schedule, overrides, from_ms, until_ms, base, edges


# ================================================================== properties

@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_final_schedule_equals_the_minute_by_minute_reference(case: tuple) -> None:
    schedule, overrides, from_ms, until_ms, base, edges = case
    note(repr(case))
    shifts = final_schedule(schedule, overrides, from_ms, until_ms, base, base_edges=edges)
    check_shape(shifts, from_ms, until_ms)
    assert per_minute(shifts, from_ms, until_ms) == \
        reference(schedule, overrides, from_ms, until_ms, base)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_holders_at_every_boundary_and_a_minute_either_side_agree_with_the_shift(
        case: tuple) -> None:
    schedule, overrides, from_ms, until_ms, base, edges = case
    shifts = final_schedule(schedule, overrides, from_ms, until_ms, base, base_edges=edges)

    def shift_at(t: int) -> Shift:
        (hit,) = [s for s in shifts if s.from_ms <= t < s.until_ms]
        return hit

    for s in shifts:
        for t in (s.from_ms - MIN, s.from_ms, s.from_ms + MIN, s.until_ms - MIN):
            if from_ms <= t < until_ms:
                assert holders_at(schedule, overrides, t, base, base_edges=edges) == \
                    shift_at(t).holders
    assert [g for g in shifts if g.source == "gap"] == \
        gaps(schedule, overrides, from_ms, until_ms, base, base_edges=edges)


@settings(max_examples=80, deadline=None)
@given(zone=st.sampled_from(ZONES), handover=clocks,
       turn=st.sampled_from([Turn(12, "hours", None), Turn(8, "hours", None),
                             Turn(6, "hours", None), Turn(1, "days", None),
                             Turn(1, "weeks", None), Turn(24, "hours", None)]),
       which=st.integers(0, 1), people=st.integers(2, 4))
def test_hand_overs_stay_at_the_same_local_time_across_dst(
        zone: str, handover: time, turn: Turn, which: int, people: int) -> None:
    special = dst_days(zone)
    day = special[which] if special else date(2026, 3, 29)
    tz = ZoneInfo(zone)
    layer = Layer("watch", tuple(PEOPLE[:people]), turn, handover, day - timedelta(days=30))
    schedule = Schedule("duty", zone, (layer,))
    from_ms = ms_of(datetime.combine(day - timedelta(days=8), time(), tz))
    until_ms = ms_of(datetime.combine(day + timedelta(days=8), time(), tz))
    shifts = final_schedule(schedule, [], from_ms, until_ms)
    check_shape(shifts, from_ms, until_ms)
    assert all(s.holders for s in shifts), "a rotation without restrictions has no gap"
    step = turn.length * {"hours": 1, "days": 24, "weeks": 168}[turn.unit or "hours"]
    allowed = {(datetime.combine(day, handover) + timedelta(hours=step * k)).time()
               for k in range(24)}
    for s in shifts[1:]:
        local = to_local(s.from_ms, tz)
        if local.time() in allowed:
            assert local.fold == 0, "a hand-over in the repeated hour is its first occurrence"
            continue
        # Only a hand-over inside the skipped hour moves: to the instant the gap ends.
        before = to_local(s.from_ms - 1, tz)
        assert local - before > timedelta(minutes=1), (s, local, before)
        assert any(before.time() < c < local.time() for c in allowed), (s, local, before)
    # A watch that spans the change is shorter or longer by the change (an hour, mostly);
    # the rest are whole.
    nominal = step * 60
    change = abs(offset_change(zone, day)) if special else 0
    inner = [(s.until_ms - s.from_ms) // MIN for s in shifts[1:-1]]
    assert all(abs(n - nominal) <= change for n in inner), inner
    assert sum(n != nominal for n in inner) <= (2 if special else 0), inner


def _merge(shifts: list[Shift]) -> list[Shift]:
    out: list[Shift] = []
    for s in shifts:
        if out and (out[-1].holders, out[-1].source) == (s.holders, s.source):
            out[-1] = Shift(s.role, s.holders, out[-1].from_ms, s.until_ms, s.source)
        else:
            out.append(s)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), cut=st.floats(0.01, 0.99))
def test_the_answer_does_not_depend_on_the_range_asked(case: tuple, cut: float) -> None:
    """Asking for two halves gives the same shifts as asking for the whole (the console's
    14 days and the API's "now" cannot disagree)."""
    schedule, overrides, from_ms, until_ms, base, edges = case
    middle = from_ms + int((until_ms - from_ms) * cut) // MIN * MIN
    whole = final_schedule(schedule, overrides, from_ms, until_ms, base, base_edges=edges)
    halves = final_schedule(schedule, overrides, from_ms, middle, base, base_edges=edges) + \
        final_schedule(schedule, overrides, middle, until_ms, base, base_edges=edges)
    assert _merge(halves) == whole
