"""The schedule model: layers of rotations in a time zone, overrides, and the shifts they make.

Everything here is plain data (frozen dataclasses). Layer times (hand-over, start, end,
restrictions, accepted gaps) are *local wall-clock* values in the schedule's IANA zone,
naive (no tzinfo); overrides and shifts are *absolute* instants in milliseconds since the
Unix epoch (UTC), like every other instant in Hotline. How local times become instants is
:mod:`hotline.schedules.localtime`; who holds a role when is :mod:`hotline.schedules.final`.
See docs/schedules.md for the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Final, Literal

#: Weekday numbers as :meth:`datetime.date.weekday` counts them, by their TOML names.
DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: Turn units: lengths are counted on the local wall clock (see :class:`Turn`).
Unit = Literal["hours", "days", "weeks"]
UNITS: Final[tuple[Unit, ...]] = ("hours", "days", "weeks")

#: ``Shift.source`` of a span in which nobody holds the role.
GAP: Final = "gap"
#: ``Shift.source`` of a span held through the directory's ``[[roster]]`` entries.
ROSTER: Final = "roster"


@dataclass(frozen=True)
class Restriction:
    """A window of the week in which a layer has someone: local time, in the schedule's zone.

    The window opens on each day in ``days`` (0 = Monday ... 6 = Sunday) at ``start`` and
    closes at ``end`` on the same day, or on the next day when ``end <= start`` (a night
    window ``22:00``-``06:00``; ``end == start`` is a whole 24 hours). Its bounds become
    instants by the same rule as hand-overs (:func:`hotline.schedules.localtime.to_ms`).
    """

    days: frozenset[int]
    start: time
    end: time


@dataclass(frozen=True)
class Turn:
    """How long each participant's turn is: ``length`` ``unit`` s, or an RFC 5545 RRULE.

    Exactly one of the two forms is set: ``length`` > 0 with ``unit``, and ``rrule None``;
    or ``rrule`` (e.g. ``"FREQ=WEEKLY;BYDAY=MO,TH"``, without ``DTSTART``) with ``length`` 0
    and ``unit`` None. Lengths are wall-clock lengths in the schedule's zone: a 12-hour turn
    handed over at 08:00 hands over at 08:00 and 20:00 local time all year, so a turn that
    spans a DST change lasts 11 or 13 hours of elapsed time.
    """

    length: int
    unit: Unit | None
    rrule: str | None = None


@dataclass(frozen=True)
class Layer:
    """One rotation: ``participants`` take turns, in order, handing over at ``handover``.

    ``start`` and ``end`` are local (naive) dates or date-times. A date means the hand-over
    time on that date. Turns are numbered from the *anchor*, ``start``'s date at the
    hand-over time: participant 0 holds the turn that begins there, participant 1 the next,
    and so on, cyclically (and backwards: a date-time ``start`` earlier in the day than the
    hand-over falls in the last participant's turn). The layer has nobody before ``start``,
    from ``end`` on, nor outside its ``restrictions`` when it has any.
    """

    name: str
    participants: tuple[str, ...]
    turn: Turn
    handover: time
    start: date | datetime
    end: date | datetime | None = None
    restrictions: tuple[Restriction, ...] = ()


@dataclass(frozen=True)
class AcceptedGap:
    """A local (naive) span ``[start, end)`` in which nobody on duty is accepted."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Schedule:
    """Who holds ``role``: layers of rotations in the IANA time zone ``zone``.

    ``layers[0]`` is the lowest: a higher layer wins wherever it has someone.
    ``accept_gaps`` says which gaps (spans with nobody on duty) are intended: ``True`` all,
    ``False`` none (every gap is a problem), or only those inside the listed local spans.
    """

    role: str
    zone: str
    layers: tuple[Layer, ...]
    accept_gaps: tuple[AcceptedGap, ...] | bool = False


@dataclass(frozen=True)
class Override:
    """A change to the layers between two absolute instants ``[from_ms, until_ms)``.

    ``unavailable=False``: ``operator`` holds the role then, instead of whoever the layers
    name ("X takes the role from ... to ..."). ``unavailable=True``: ``operator`` holds the
    role from no layer, no roster entry and no other override then ("X is unavailable from
    ... to ..."); whoever is next in line holds it, or nobody (a gap). ``operator`` is
    required in both forms; ``None`` is refused (ValueError), so that an override can never
    silently empty a role. Overrides are absolute: editing a layer does not move them.
    """

    id: str
    role: str
    operator: str | None
    from_ms: int
    until_ms: int
    unavailable: bool = False

    def __post_init__(self) -> None:
        if self.operator is None:
            raise ValueError(f"override {self.id!r} names no operator")
        if self.until_ms <= self.from_ms:
            raise ValueError(f"override {self.id!r} ends ({self.until_ms}) before it starts "
                             f"({self.from_ms})")


@dataclass(frozen=True)
class Shift:
    """Who holds ``role`` during ``[from_ms, until_ms)``: one piece of the final schedule.

    ``source`` says why: ``"layer:<name>"``, ``"override:<id>"`` (ids joined by ``,`` when
    several overrides hand the role to several operators at once), ``"roster"`` (the
    directory's ``[[roster]]`` entries) or ``"gap"`` (``holders`` is empty).
    """

    role: str
    holders: tuple[str, ...]
    from_ms: int
    until_ms: int
    source: str

    @property
    def is_gap(self) -> bool:
        return not self.holders
