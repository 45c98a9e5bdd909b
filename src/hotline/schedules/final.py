"""The final schedule: who holds a role from when to when. The one answer to "who is on duty".

:func:`final_schedule` is the only computation; :func:`holders_at` and :func:`gaps` are
views of it, so the escalation engine, desk staffing, the CLI, the API and the console
cannot disagree. The rules (docs/schedules.md):

1. Overrides that give the role to an operator win over everything: all operators so
   named at an instant hold the role together.
2. Otherwise the highest layer that has someone (inside its start/end and restrictions)
   holds it.
3. Otherwise the directory's roster (``base``), the lowest layer, holds it.
4. Otherwise nobody: a gap.

An operator with an "unavailable" override is taken out at every level, so the next level
down answers for the time being (a lower layer, the roster, or a gap).

All instants are milliseconds since the epoch (UTC); layers are evaluated on local
wall-clock time and mapped by :func:`hotline.schedules.localtime.to_ms`.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from hotline.schedules.localtime import at, to_local, to_ms, zone
from hotline.schedules.model import (
    GAP,
    ROSTER,
    Layer,
    Override,
    Restriction,
    Schedule,
    Shift,
)

#: Who the directory's roster puts on duty at an instant (ms): the lowest layer.
Base = Callable[[int], tuple[str, ...]]

_Span = tuple[int, int, str]  # [from_ms, until_ms) held by one participant

#: The most hand-overs of an RRULE layer counted from its start (an hourly rule: 114 years).
MAX_OCCURRENCES = 1_000_000
#: The longest range one call computes (a year and a bit); edges bound what they ask for.
MAX_RANGE_MS = 400 * 24 * 3_600_000


# ================================================================== one layer

def _anchor(layer: Layer) -> datetime:
    """The local date-time at which participant 0's first turn begins."""
    day = layer.start.date() if isinstance(layer.start, datetime) else layer.start
    return at(day, layer.handover)


def _bound(value: date | datetime, layer: Layer, tz: ZoneInfo) -> int:
    """A layer's start or end as an instant: a date means its hand-over time that day."""
    if isinstance(value, datetime):
        return to_ms(value, tz)
    return to_ms(at(value, layer.handover), tz)


def _step(layer: Layer) -> timedelta:
    turn = layer.turn
    if turn.unit == "hours":
        return timedelta(hours=turn.length)
    if turn.unit == "days":
        return timedelta(days=turn.length)
    return timedelta(weeks=turn.length)


class _Occurrences:
    """One RRULE's occurrences from its anchor (naive local), computed as far as asked.

    Participant *k* holds the turn from occurrence *k*, so answering any instant needs the
    count of occurrences before it; they are kept, sorted, so that asking again (every
    ring of every call asks) costs a bisection, not a walk from the layer's start.
    """

    def __init__(self, text: str, anchor: datetime) -> None:
        rule = rrulestr(text, dtstart=anchor)
        assert isinstance(rule, rrule)  # parse.py accepts one RRULE value only
        self._next = iter(rule)
        self._lock = threading.Lock()  # a generator cannot be advanced by two threads
        self.items: list[datetime] = []
        self.finite = False

    def until(self, local: datetime) -> list[datetime]:
        """The occurrences so far, extended past ``local`` (or to the rule's end)."""
        with self._lock:
            self._extend(local)
        return self.items

    def _extend(self, local: datetime) -> None:
        while not self.finite and (not self.items or self.items[-1] <= local):
            if len(self.items) >= MAX_OCCURRENCES:
                raise ValueError(f"more than {MAX_OCCURRENCES} hand-overs from the layer's "
                                 "start: move its start closer")
            try:
                occurrence = next(self._next)
            except StopIteration:
                self.finite = True
                return
            if self.items and occurrence <= self.items[-1]:
                raise ValueError("the RRULE does not advance (INTERVAL=0?)")
            self.items.append(occurrence)


@lru_cache(maxsize=256)
def _occurrences(text: str, anchor: datetime) -> _Occurrences:
    return _Occurrences(text, anchor)


def _fixed_turns(layer: Layer, tz: ZoneInfo, lo: int, hi: int) -> list[_Span]:
    """Turns of ``length`` ``unit`` s on the local clock, clipped to ``[lo, hi)``."""
    anchor, step, people = _anchor(layer), _step(layer), layer.participants
    k = (to_local(lo, tz) - anchor) // step
    # The naive estimate can be one off inside a repeated hour: settle it on instants.
    while to_ms(anchor + k * step, tz) > lo:
        k -= 1
    while to_ms(anchor + (k + 1) * step, tz) <= lo:
        k += 1
    spans: list[_Span] = []
    begin = to_ms(anchor + k * step, tz)
    while begin < hi:
        end = to_ms(anchor + (k + 1) * step, tz)
        if max(begin, lo) < min(end, hi):
            spans.append((max(begin, lo), min(end, hi), people[k % len(people)]))
        begin, k = end, k + 1
    return spans


def _rrule_turns(layer: Layer, tz: ZoneInfo, lo: int, hi: int) -> list[_Span]:
    """Turns between consecutive RRULE occurrences, clipped to ``[lo, hi)``.

    The first occurrence is participant 0's; before it the layer has nobody, and a rule
    with COUNT or UNTIL ends the layer at its last occurrence.
    """
    assert layer.turn.rrule is not None
    people = layer.participants
    known = _occurrences(layer.turn.rrule, _anchor(layer))
    items = known.until(to_local(lo, tz))
    # The last occurrence at or before lo; settled on instants (a repeated hour can put
    # the naive estimate one off), -1 when lo is before the first.
    k = bisect.bisect_right(items, to_local(lo, tz).replace(fold=0)) - 1
    while k >= 0 and to_ms(items[k], tz) > lo:
        k -= 1
    while k + 1 < len(items) and to_ms(items[k + 1], tz) <= lo:
        k += 1
    spans: list[_Span] = []
    k = max(k, 0)
    while k + 1 < len(items) or not known.finite:
        begin = to_ms(items[k], tz)
        if begin >= hi:
            break
        if k + 1 >= len(items):
            items = known.until(items[-1])
            if k + 1 >= len(items):
                break
        end = to_ms(items[k + 1], tz)
        if max(begin, lo) < min(end, hi):
            spans.append((max(begin, lo), min(end, hi), people[k % len(people)]))
        k += 1
    return spans


def _windows(restrictions: Sequence[Restriction], tz: ZoneInfo, lo: int,
             hi: int) -> list[tuple[int, int]]:
    """The union of the restriction windows that meet ``[lo, hi)``, as sorted instants."""
    first = to_local(lo, tz).date() - timedelta(days=1)
    last = to_local(hi, tz).date()
    raw: list[tuple[int, int]] = []
    day = first
    while day <= last:
        for r in restrictions:
            if day.weekday() not in r.days:
                continue
            close_day = day if r.end > r.start else day + timedelta(days=1)
            begin, end = to_ms(at(day, r.start), tz), to_ms(at(close_day, r.end), tz)
            if max(begin, lo) < min(end, hi):
                raw.append((max(begin, lo), min(end, hi)))
        day += timedelta(days=1)
    raw.sort()
    merged: list[tuple[int, int]] = []
    for begin, end in raw:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _restrict(spans: list[_Span], windows: list[tuple[int, int]]) -> list[_Span]:
    """The parts of ``spans`` inside ``windows``; both sorted and disjoint, walked once."""
    out: list[_Span] = []
    i = 0
    for begin, end, who in spans:
        while i < len(windows) and windows[i][1] <= begin:
            i += 1
        j = i
        while j < len(windows) and windows[j][0] < end:
            w_begin, w_end = windows[j]
            if max(begin, w_begin) < min(end, w_end):
                out.append((max(begin, w_begin), min(end, w_end), who))
            j += 1
    return out


def layer_turns(layer: Layer, zone_name: str, from_ms: int, until_ms: int) -> list[_Span]:
    """Who the layer alone names within ``[from_ms, until_ms)``: sorted, disjoint spans.

    Each span is ``(from_ms, until_ms, participant)``; times with nobody (before ``start``,
    from ``end``, outside the restrictions) have no span.
    """
    tz = zone(zone_name)
    lo = max(from_ms, _bound(layer.start, layer, tz))
    hi = until_ms if layer.end is None else min(until_ms, _bound(layer.end, layer, tz))
    if lo >= hi:
        return []
    spans = _rrule_turns(layer, tz, lo, hi) if layer.turn.rrule is not None \
        else _fixed_turns(layer, tz, lo, hi)
    if layer.restrictions:
        spans = _restrict(spans, _windows(layer.restrictions, tz, lo, hi))
    return spans


# ================================================================== all together

class _Lookup:
    """Who one layer names at an instant, by bisection over its spans."""

    def __init__(self, spans: list[_Span]) -> None:
        self.spans = spans
        self.starts = [s[0] for s in spans]

    def at(self, ms: int) -> str | None:
        i = bisect.bisect_right(self.starts, ms) - 1
        if i >= 0 and ms < self.spans[i][1]:
            return self.spans[i][2]
        return None


def final_schedule(schedule: Schedule | None, overrides: Sequence[Override], from_ms: int,
                   until_ms: int, base: Base | None = None, *, base_edges: Iterable[int] = (),
                   role: str | None = None) -> list[Shift]:
    """The final schedule of one role over ``[from_ms, until_ms)``: contiguous shifts.

    ``schedule`` None means the role has no layers (only the roster and overrides).
    ``overrides`` for other roles than the schedule's (or ``role``) are ignored. ``base`` is
    the roster (who it has on duty at an instant; several people at once are fine) and
    ``base_edges`` the instants at which its answer may change (its entries' ``from`` and
    ``until``): between two edges ``base`` is asked once. ``role`` names the role when there
    is no schedule. The result is sorted, contiguous, covers exactly ``[from_ms,
    until_ms)`` (empty if that is empty), and adjacent shifts differ in holders or source; a
    span with nobody is a shift with ``holders == ()`` and ``source == "gap"``.

    Raises ValueError for a range longer than :data:`MAX_RANGE_MS` (the edges check the
    ranges people ask for first), an RRULE layer more than :data:`MAX_OCCURRENCES`
    hand-overs past its start, or a turn that would end past the year 9999 (the edges
    turn these into refusals: :mod:`hotline.calls.duty`).
    """
    if until_ms <= from_ms:
        return []
    if until_ms - from_ms > MAX_RANGE_MS:
        raise ValueError(f"a range of {(until_ms - from_ms) // 86_400_000} days is longer "
                         f"than the limit of {MAX_RANGE_MS // 86_400_000}")
    name = schedule.role if schedule is not None else (role or "")
    mine = [o for o in overrides if o.role == name or (schedule is None and role is None)]
    lookups: list[tuple[str, _Lookup]] = []
    edges = {from_ms, until_ms}
    if schedule is not None:
        for layer in schedule.layers:
            try:
                spans = layer_turns(layer, schedule.zone, from_ms, until_ms)
            except OverflowError:  # a turn's local end past the year 9999
                raise ValueError("the layer's turns cannot be counted that far (the year "
                                 "9999 at most)") from None
            lookups.append((layer.name, _Lookup(spans)))
            for begin, end, _who in spans:
                edges.update((begin, end))
    for o in mine:
        edges.update((o.from_ms, o.until_ms))
    if base is not None:
        edges.update(base_edges)
    points = sorted(e for e in edges if from_ms <= e <= until_ms)
    shifts: list[Shift] = []
    for begin, end in itertools.pairwise(points):
        holders, source = _decide(begin, mine, lookups, base)
        last = shifts[-1] if shifts else None
        if last is not None and last.holders == holders and last.source == source:
            shifts[-1] = Shift(name, holders, last.from_ms, end, source)
        else:
            shifts.append(Shift(name, holders, begin, end, source))
    return shifts


def _decide(ms: int, overrides: Sequence[Override], lookups: Sequence[tuple[str, _Lookup]],
            base: Base | None) -> tuple[tuple[str, ...], str]:
    """Holders and source at ``ms`` by the rules in the module docstring."""
    active = sorted((o for o in overrides if o.from_ms <= ms < o.until_ms),
                    key=lambda o: (o.from_ms, o.id))
    away = {o.operator for o in active if o.unavailable}
    takers: list[str] = []
    ids: list[str] = []
    for o in active:
        if not o.unavailable and o.operator not in away and o.operator is not None:
            ids.append(o.id)
            if o.operator not in takers:
                takers.append(o.operator)
    if takers:
        return tuple(takers), "override:" + ",".join(ids)
    for layer_name, lookup in reversed(lookups):
        who = lookup.at(ms)
        if who is not None and who not in away:
            return (who,), f"layer:{layer_name}"
    if base is not None:
        on_duty = tuple(dict.fromkeys(w for w in base(ms) if w not in away))
        if on_duty:
            return on_duty, ROSTER
    return (), GAP


def holders_at(schedule: Schedule | None, overrides: Sequence[Override], at_ms: int,
               base: Base | None = None, *, base_edges: Iterable[int] = (),
               role: str | None = None) -> tuple[str, ...]:
    """Who holds the role at the instant ``at_ms``: the holders of the final schedule's shift
    that contains it (``()`` in a gap). The same computation as :func:`final_schedule`."""
    shifts = final_schedule(schedule, overrides, at_ms, at_ms + 1, base,
                            base_edges=base_edges, role=role)
    return shifts[0].holders


def gaps(schedule: Schedule | None, overrides: Sequence[Override], from_ms: int,
         until_ms: int, base: Base | None = None, *, base_edges: Iterable[int] = (),
         role: str | None = None) -> list[Shift]:
    """The gap shifts of :func:`final_schedule` over ``[from_ms, until_ms)``, accepted or not."""
    return [s for s in final_schedule(schedule, overrides, from_ms, until_ms, base,
                                      base_edges=base_edges, role=role) if s.is_gap]


def unaccepted_gaps(schedule: Schedule | None, shifts: Sequence[Shift]) -> list[Shift]:
    """The parts of the gaps among ``shifts`` that the schedule's ``accept_gaps`` does not
    accept: every gap when there is no schedule or ``accept_gaps`` is False, none when it
    is True, else what lies outside the accepted local spans (mapped like hand-overs)."""
    holes = [s for s in shifts if s.is_gap]
    if schedule is None or schedule.accept_gaps is False:
        return holes
    if schedule.accept_gaps is True:
        return []
    tz = zone(schedule.zone)
    accepted = sorted((to_ms(a.start, tz), to_ms(a.end, tz)) for a in schedule.accept_gaps)
    out: list[Shift] = []
    for hole in holes:
        cursor = hole.from_ms
        for begin, end in accepted:
            if end <= cursor or begin >= hole.until_ms:
                continue
            if begin > cursor:
                out.append(Shift(hole.role, (), cursor, begin, GAP))
            cursor = max(cursor, end)
        if cursor < hole.until_ms:
            out.append(Shift(hole.role, (), cursor, hole.until_ms, GAP))
    return out



def upcoming_gaps(schedule: Schedule | None, overrides: Sequence[Override], now_ms: int,
                  horizon_ms: int, base: Base | None = None, *,
                  base_edges: Iterable[int] = (), role: str | None = None) -> list[Shift]:
    """The gaps within ``[now_ms, now_ms + horizon_ms)`` that ``accept_gaps`` does not
    accept, overrides included: what the gap alarm warns of before it happens."""
    shifts = final_schedule(schedule, overrides, now_ms, now_ms + horizon_ms, base,
                            base_edges=base_edges, role=role)
    return unaccepted_gaps(schedule, shifts)


def hand_overs(shifts: Sequence[Shift]) -> list[tuple[int, Shift, Shift]]:
    """Each instant at which the holders change, with the shifts before and after it.

    A change of source alone (the same person, now by an override) is not a hand-over.
    ``shifts`` are one role's, contiguous, as :func:`final_schedule` returns them.
    """
    out: list[tuple[int, Shift, Shift]] = []
    for before, after in itertools.pairwise(shifts):
        if before.holders != after.holders:
            out.append((after.from_ms, before, after))
    return out
