"""Checking one role's schedule table from the directory file into a :class:`Schedule`.

The table is what sits under ``[schedules.<role>]`` (the TOML shape is in
docs/schedules.md). Like the directory's own checker, :func:`parse_schedule` never stops at
the first problem: it reports every one, each with its field path from the top of the
file (``schedules.ccp-do.layers[0].turn``) and its line, found by the ``locate`` callable
the directory's :class:`~hotline.calls.directory.locate.Locator` provides.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, Final

from dateutil.rrule import rrulestr

from hotline.problems import Path, Problem, got, render_path, show
from hotline.schedules.final import Base, final_schedule, unaccepted_gaps
from hotline.schedules.localtime import at, to_local, zone
from hotline.schedules.model import (
    DAY_NAMES,
    AcceptedGap,
    Layer,
    Restriction,
    Schedule,
    Turn,
    Unit,
)

_TURN_RE: Final = re.compile(r"([0-9]{1,4})(h|d|w)")
_UNIT: Final[dict[str, Unit]] = {"h": "hours", "d": "days", "w": "weeks"}
#: The longest turn of each unit (a turn is a watch, not a posting).
_MAX_TURN: Final[dict[str, int]] = {"h": 24 * 31, "d": 366, "w": 52}
_CLOCK_RE: Final = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
_FREQ_RE: Final = re.compile(r"(?:^|;)FREQ=([A-Z]+)(?:;|$)")
#: The RRULE parts a layer may use. Left out: BYSETPOS, BYYEARDAY, BYWEEKNO, BYSECOND
#: (and dateutil's BYEASTER), with which a rule can go years without an occurrence while
#: the recurrence library steps through every period in between.
_RULE_PARTS: Final = ("FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY", "BYMONTHDAY",
                      "BYMONTH", "BYHOUR", "BYMINUTE")
#: The parts that choose days; a rule with them must have such days at all.
_DAY_PARTS: Final = ("BYMONTH", "BYMONTHDAY", "BYDAY")
_MAX_INTERVAL: Final = 1000
_FREQS: Final = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")
#: Schedules are for years people plan in; the bounds keep every computation in range.
MIN_YEAR: Final = 1971
MAX_YEAR: Final = 2999
#: At most this many participants per layer, layers per schedule, restrictions per layer.
MAX_PARTICIPANTS: Final = 100
MAX_LAYERS: Final = 20
MAX_RESTRICTIONS: Final = 50
#: Gap problems reported per schedule before "... and N more".
MAX_GAPS_SHOWN: Final = 5

_LAYER_KEYS: Final = ("name", "participants", "turn", "rrule", "handover", "start", "end",
                      "restrictions")
_TURN_HELP: Final = 'use e.g. "12h", "1d" or "1w", or rrule = "FREQ=..." instead'
_DATE_HELP: Final = "a local date or date-time, e.g. 2026-01-05 or 2026-01-05T08:00"


def _suggest(name: str, options: Collection[str]) -> str:
    close = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.7)
    return f" (did you mean {show(close[0])}?)" if close else ""


class _Check:
    """Collects problems for one schedule table; ``at`` is the table's own path."""

    def __init__(self, at_path: Path, locate: Callable[[Path], int | None],
                 operators: Mapping[str, Collection[str]] | None, role: str) -> None:
        self.at = at_path
        self.locate = locate
        self.operators = operators
        self.role = role
        self.problems: list[Problem] = []

    def err(self, rel: Path, message: str) -> None:
        path = (*self.at, *rel)
        self.problems.append(Problem(self.locate(path), render_path(path), message))

    def table(self, value: object, rel: Path, allowed: Sequence[str]) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            self.err(rel, f"must be a table, not {got(value)}")
            return None
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.err(rel, f"has a key that is not a string: {key!r:.40}")
            elif key not in allowed:
                self.err((*rel, key), f"unknown field {show(key)}" + (
                    _suggest(key, allowed) or f" (allowed here: {', '.join(sorted(allowed))})"))
            else:
                out[key] = item
        return out

    # -------------------------------------------------------------- leaves
    def zone_name(self, value: object) -> str | None:
        if value is None:
            self.err(("zone",), 'missing: the IANA time zone, e.g. zone = "Europe/Warsaw"')
            return None
        if not isinstance(value, str):
            self.err(("zone",), f"must be an IANA time zone name, not {got(value)}")
            return None
        try:
            zone(value)
        except KeyError:
            import zoneinfo  # only on this error path: listing the zones reads the database

            self.err(("zone",), f"unknown time zone {show(value)}" + (
                _suggest(value, zoneinfo.available_timezones())
                or ' (use an IANA name such as "Europe/Warsaw")'))
            return None
        return value

    def clock(self, value: object, rel: Path) -> time | None:
        """A wall-clock time of day in whole minutes: ``"08:00"`` (or a TOML time)."""
        if isinstance(value, time):
            if value.tzinfo is not None or value.second or value.microsecond:
                self.err(rel, f"{show(value)} must be a local time in whole minutes, "
                              'e.g. "08:00"')
                return None
            return value
        match = _CLOCK_RE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            self.err(rel, f"{show(value)} is not a time of day: use 24-hour HH:MM, "
                          'e.g. "08:00"')
            return None
        return time(int(match[1]), int(match[2]))

    def moment(self, value: object, rel: Path) -> date | datetime | None:
        """A local date or date-time: a TOML local date/date-time or the same as a string."""
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value) if "T" in value or " " in value \
                    else date.fromisoformat(value)
            except ValueError:
                self.err(rel, f"{show(value)} is not {_DATE_HELP}")
                return None
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                self.err(rel, f"{show(value)} has a UTC offset: write the local time in the "
                              "schedule's zone, without an offset (e.g. 2026-01-05T08:00)")
                return None
        elif not isinstance(value, date):
            self.err(rel, f"must be {_DATE_HELP}, not {got(value)}")
            return None
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            self.err(rel, f"{show(value)} is outside the years {MIN_YEAR} to {MAX_YEAR}")
            return None
        return value

    def participants(self, value: object, rel: Path) -> tuple[str, ...]:
        if value is None:
            self.err(rel, 'missing: the operators who take turns, e.g. participants = '
                          '["ccp-1", "ccp-2"]')
            return ()
        if not isinstance(value, list | tuple):
            self.err(rel, f"must be an array of operator ids, not {got(value)}")
            return ()
        if not value:
            self.err(rel, "must name at least one operator")
        elif len(value) > MAX_PARTICIPANTS:
            self.err(rel, f"has {len(value)} participants; at most {MAX_PARTICIPANTS} "
                          "are allowed")
        seen: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.err((*rel, i), f"must be an operator id, not {got(item)}")
            elif item in seen:
                self.err((*rel, i), f"{show(item)} is listed twice (a rotation lists each "
                                    "participant once; add a layer for a second pattern)")
            else:
                seen.append(item)
                self.operator_ref(item, (*rel, i))
        return tuple(seen)

    def operator_ref(self, operator: str, rel: Path) -> None:
        if self.operators is None:
            return
        if operator not in self.operators:
            self.err(rel, f"undefined operator {show(operator)}"
                     + (_suggest(operator, self.operators) or " (define it under [operators])"))
        elif self.role not in self.operators[operator]:
            held = ", ".join(sorted(self.operators[operator])) or "none"
            self.err(rel, f"operator {show(operator)} does not hold role {show(self.role)} "
                          f"(their roles: {held})")

    def turn(self, table: Mapping[str, Any], rel: Path,
             anchor: datetime | None) -> Turn | None:
        spec, rule = table.get("turn"), table.get("rrule")
        if spec is not None and rule is not None:
            self.err((*rel, "rrule"), "give either turn or rrule, not both")
            return None
        if spec is None and rule is None:
            self.err((*rel, "turn"), f'missing: how long a turn is ({_TURN_HELP})')
            return None
        if spec is not None:
            match = _TURN_RE.fullmatch(spec) if isinstance(spec, str) else None
            if match is None:
                self.err((*rel, "turn"), f"{show(spec)} is not a turn length ({_TURN_HELP})")
                return None
            length, unit = int(match[1]), match[2]
            if length == 0:
                self.err((*rel, "turn"), f"{show(spec)} is not longer than zero")
                return None
            if length > _MAX_TURN[unit]:
                self.err((*rel, "turn"), f"{show(spec)} is longer than the limit of "
                                         f"{_MAX_TURN[unit]}{unit}")
                return None
            return Turn(length, _UNIT[unit], None)
        return self.rrule(rule, (*rel, "rrule"), anchor)

    def rrule(self, value: object, rel: Path, anchor: datetime | None) -> Turn | None:
        if not isinstance(value, str):
            self.err(rel, f'must be an RRULE string, e.g. "FREQ=WEEKLY;BYDAY=MO", '
                          f"not {got(value)}")
            return None
        text = value.strip().upper().removeprefix("RRULE:")
        if not text or any(c in text for c in "\r\n") or ":" in text:
            self.err(rel, f"{show(value)} must be one RRULE value such as "
                          '"FREQ=DAILY;INTERVAL=2" (no DTSTART, EXDATE or other lines: the '
                          "layer's start and hand-over give the first occurrence)")
            return None
        freq = _FREQ_RE.search(text)
        if freq is None or freq[1] not in _FREQS:
            self.err(rel, f"{show(value)} needs FREQ={'|'.join(_FREQS)} (turns shorter than "
                          "an hour are not supported)")
            return None
        problem = _rule_shape(text, freq[1])
        if problem is None and anchor is not None:
            problem = _missing_day(text, freq[1], anchor)
        if problem is not None:
            self.err(rel, f"{show(value)}: {problem}")
            return None
        try:
            rule = rrulestr(text, dtstart=anchor or datetime(2026, 1, 1))
            days = [k for k in _DAY_PARTS if f"{k}=" in text]
            if days and not _happens(";".join(p for p in text.split(";")
                                              if p.split("=")[0] in days)):
                self.err(rel, f"{show(value)} never happens (no day has "
                              f"{' and '.join(days)} as given)")
                return None
            occurrences = list(itertools.islice(rule, 2)) if anchor is not None else []
        except (ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
            self.err(rel, f"{show(value)} is not a valid RRULE: {exc}")
            return None
        if anchor is not None and (len(occurrences) < 2 or occurrences[0] == occurrences[1]):
            self.err(rel, f"{show(value)} gives fewer than two hand-overs from the layer's "
                          "start, so no turn")
            return None
        return Turn(0, None, text)

    def restrictions(self, value: object, rel: Path) -> tuple[Restriction, ...]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.err(rel, f'must be an array of {{ days = ["mon"], from = "08:00", '
                          f'to = "20:00" }} tables, not {got(value)}')
            return ()
        if len(value) > MAX_RESTRICTIONS:
            self.err(rel, f"has {len(value)} windows; at most {MAX_RESTRICTIONS} are allowed")
        out: list[Restriction] = []
        for i, item in enumerate(value):
            path = (*rel, i)
            table = self.table(item, path, ("days", "from", "to"))
            if table is None:
                continue
            days = self.days(table.get("days"), (*path, "days"))
            start = end = None
            for key in ("from", "to"):
                if table.get(key) is None:
                    self.err((*path, key), f'missing: a time of day, e.g. {key} = "08:00"')
                elif key == "from":
                    start = self.clock(table[key], (*path, key))
                else:
                    end = self.clock(table[key], (*path, key))
            if days and start is not None and end is not None:
                out.append(Restriction(days, start, end))
        return tuple(out)

    def days(self, value: object, rel: Path) -> frozenset[int]:
        names = ", ".join(f'"{d}"' for d in DAY_NAMES)
        if value is None:
            self.err(rel, f'missing: the days the window opens, e.g. days = ["mon", "tue"] '
                          f"(of {names})")
            return frozenset()
        if not isinstance(value, list | tuple) or not value:
            self.err(rel, f"must be a non-empty array of day names ({names}), "
                          f"not {got(value)}")
            return frozenset()
        days: set[int] = set()
        for i, item in enumerate(value):
            if not isinstance(item, str) or item not in DAY_NAMES:
                self.err((*rel, i), f"{show(item)} is not one of {names}")
            elif DAY_NAMES.index(item) in days:
                self.err((*rel, i), f"{show(item)} is listed twice")
            else:
                days.add(DAY_NAMES.index(item))
        return frozenset(days)

    # -------------------------------------------------------------- tables
    def layer(self, value: object, index: int, names: set[str]) -> Layer | None:
        rel: Path = ("layers", index)
        table = self.table(value, rel, _LAYER_KEYS)
        if table is None:
            return None
        name = table.get("name")
        if name is None:
            self.err((*rel, "name"), 'missing: a name for the layer, e.g. name = "watch"')
        elif not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            self.err((*rel, "name"), f"{show(name)} is not a layer name: use 1-64 letters, "
                                     'digits, " ", ".", "_" and "-", starting with a letter '
                                     "or digit")
            name = None
        elif name in names:
            self.err((*rel, "name"), f"{show(name)} names another layer too")
        else:
            names.add(name)
        people = self.participants(table.get("participants"), (*rel, "participants"))
        handover = None
        if table.get("handover") is None:
            self.err((*rel, "handover"), 'missing: the local time turns change, '
                                         'e.g. handover = "08:00"')
        else:
            handover = self.clock(table["handover"], (*rel, "handover"))
        start = None
        if table.get("start") is None:
            self.err((*rel, "start"), f"missing: when the rotation begins, {_DATE_HELP}")
        else:
            start = self.moment(table["start"], (*rel, "start"))
        end = None if table.get("end") is None else self.moment(table["end"], (*rel, "end"))
        anchor = at(_day(start), handover) if start is not None and handover is not None \
            else None
        if anchor is not None and start is not None and end is not None and handover is not None:
            first = start if isinstance(start, datetime) else anchor
            last = end if isinstance(end, datetime) else at(end, handover)
            if last <= first:
                self.err((*rel, "end"), f"{show(table['end'])} is not after the start "
                                        f"({first.isoformat(timespec='minutes')})")
        turn = self.turn(table, rel, anchor)
        restrictions = self.restrictions(table.get("restrictions"), (*rel, "restrictions"))
        if name is None or not people or turn is None or handover is None or start is None:
            return None
        return Layer(name, people, turn, handover, start, end, restrictions)

    def accepted(self, value: object) -> tuple[AcceptedGap, ...] | bool:
        rel: Path = ("accept_gaps",)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if not isinstance(value, list | tuple):
            self.err(rel, "must be true, false or an array of { from = ..., to = ... } local "
                          f"spans, not {got(value)}")
            return False
        out: list[AcceptedGap] = []
        for i, item in enumerate(value):
            path = (*rel, i)
            table = self.table(item, path, ("from", "to"))
            if table is None:
                continue
            ends: list[datetime] = []
            for key in ("from", "to"):
                if table.get(key) is None:
                    self.err((*path, key), f"missing: {_DATE_HELP}")
                    continue
                moment = self.moment(table[key], (*path, key))
                if moment is not None:
                    ends.append(moment if isinstance(moment, datetime)
                                else datetime.combine(moment, time()))
            if len(ends) == 2:
                if ends[1] <= ends[0]:
                    self.err((*path, "to"), f"{show(table['to'])} is not after "
                                            f"{show(table['from'])}")
                else:
                    out.append(AcceptedGap(ends[0], ends[1]))
        return tuple(out)


def _rule_shape(text: str, freq: str) -> str | None:
    """What is wrong with an RRULE's parts, before the library runs it; None if nothing.

    The library steps through every period (hour, day, ...) until one has an occurrence,
    up to the year 9999: a rule whose filters never meet its steps would hold a check or a
    question for minutes. So every period of a rule with filters must be able to have one.
    """
    parts: dict[str, str] = {}
    for part in text.split(";"):
        key, _, val = part.partition("=")
        if key not in _RULE_PARTS:
            return (f"{key or 'an empty part'} is not supported here (use "
                    f"{', '.join(_RULE_PARTS)})")
        if key in parts:
            return f"{key} is given twice"
        parts[key] = val
    if "COUNT" in parts and "UNTIL" in parts:
        return "give COUNT or UNTIL, not both"
    if parts.get("UNTIL", "").endswith("Z"):
        return "UNTIL is a local date-time in the schedule's zone; write it without the Z"
    interval = parts.get("INTERVAL", "1")
    if not interval.isdigit() or not 1 <= int(interval) <= _MAX_INTERVAL:
        return f"INTERVAL must be a whole number from 1 to {_MAX_INTERVAL}"
    # The library silently drops a month day of 0 (RFC 5545 has none): with nothing left
    # to filter, "BYMONTHDAY=0" would hand over every day.
    if any(d.lstrip("+-") == "0" for d in parts.get("BYMONTHDAY", "").split(",")):
        return "BYMONTHDAY values are 1 to 31 or -31 to -1, never 0"
    # Two minutes of the hour would hand over twice within it: a turn shorter than an
    # hour, as FREQ=MINUTELY is (and a million hand-overs within two years).
    if "," in parts.get("BYMINUTE", ""):
        return ("BYMINUTE takes one minute of the hour (turns shorter than an hour are not "
                "supported)")
    filters = [k for k in ("BYDAY", "BYMONTH", "BYMONTHDAY", "BYHOUR") if k in parts]
    if int(interval) > 1 and freq in ("DAILY", "HOURLY") and \
            [k for k in filters if freq == "HOURLY" or k != "BYHOUR"]:
        return (f"INTERVAL above 1 with {', '.join(filters)} may never meet; use "
                "FREQ=WEEKLY or FREQ=MONTHLY with BYDAY instead")
    return None


#: The fewest days each month has (February: 28, outside leap years).
_SHORTEST_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_NAMES: Final = ("January", "February", "March", "April", "May", "June", "July",
                       "August", "September", "October", "November", "December")


def _missing_day(text: str, freq: str, anchor: datetime) -> str | None:
    """A MONTHLY or YEARLY rule that names no day repeats the start's day of the month
    (RFC 5545; python-dateutil reads it so): from the 29th to the 31st, or from 29
    February, the months (years) without that day are skipped without a word, and a turn
    lasts two months (four years). None when every period the rule uses has the day."""
    if freq not in ("MONTHLY", "YEARLY"):
        return None
    parts = dict(part.partition("=")[::2] for part in text.split(";"))
    if "BYDAY" in parts or "BYMONTHDAY" in parts:
        return None
    if "BYMONTH" in parts:
        months = [int(m) for m in parts["BYMONTH"].split(",") if m.strip().isdigit()]
    else:
        months = list(range(1, 13)) if freq == "MONTHLY" else [anchor.month]
    short = [m for m in months if 1 <= m <= 12 and _SHORTEST_MONTH[m - 1] < anchor.day]
    if not short:
        return None
    if freq == "YEARLY" and short == [2] and anchor.day == 29:
        return ("from 29 February recurs only in leap years, so each turn would last four "
                "years; write BYMONTH=2;BYMONTHDAY=-1 for the last day of February, or "
                "start the layer on another day")
    return (f"from day {anchor.day} of the month skips {_MONTH_NAMES[short[0] - 1]}"
            f"{' and other months' if len(short) > 1 else ''} (no day {anchor.day} in "
            "some years or ever), so a turn would last until the next month that has it; "
            "write BYMONTHDAY=-1 for the last day of the month, or start the layer on a "
            "day every month has")


def _happens(day_parts: str) -> bool:
    """Whether any day has the BYMONTH/BYMONTHDAY/BYDAY of a rule (a yearly probe: at most
    one step a year, so it ends quickly even when no day does)."""
    probe = rrulestr(f"FREQ=YEARLY;{day_parts}", dtstart=datetime(2000, 1, 1))
    return next(iter(probe), None) is not None


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def parse_schedule(role: str, data: Mapping[str, object],
                   locate: Callable[[Path], int | None], *,
                   operators: Mapping[str, Collection[str]] | None = None,
                   at_path: Path | None = None) -> tuple[Schedule | None, list[Problem]]:
    """Check the table under ``[schedules.<role>]``; the schedule, or None and the problems.

    Every problem is reported, each with its full field path (``at_path``, by default
    ``("schedules", role)``, then the path inside the table) and the line ``locate`` gives
    for that full path (None when it cannot tell). ``operators`` (operator id → the roles
    they hold), when given, is used to check that every participant exists and holds
    ``role``. The schedule is returned only when there are no problems. Gaps are not
    checked here (they depend on the roster and a horizon): see :func:`gap_problems`.
    """
    check = _Check(("schedules", role) if at_path is None else at_path, locate, operators,
                   role)
    table = check.table(data, (), ("zone", "accept_gaps", "layers"))
    if table is None:
        return None, check.problems
    zone_name = check.zone_name(table.get("zone"))
    accept = check.accepted(table.get("accept_gaps"))
    raw = table.get("layers")
    layers: list[Layer] = []
    if raw is None:
        check.err(("layers",), "missing: at least one layer, e.g. [[schedules."
                               f"{role}.layers]] with name, participants, turn, handover "
                               "and start")
    elif not isinstance(raw, list | tuple) or not raw:
        check.err(("layers",), "must be a non-empty array of tables ([[schedules."
                               f"{role}.layers]]), not {got(raw)}")
    else:
        if len(raw) > MAX_LAYERS:
            check.err(("layers",), f"has {len(raw)} layers; at most {MAX_LAYERS} are allowed")
        names: set[str] = set()
        for i, item in enumerate(raw):
            layer = check.layer(item, i, names)
            if layer is not None:
                layers.append(layer)
    if check.problems or zone_name is None:
        return None, check.problems
    return Schedule(role, zone_name, tuple(layers), accept), []


def gap_problems(schedule: Schedule, from_ms: int, until_ms: int,
                 locate: Callable[[Path], int | None], base: Base | None = None, *,
                 base_edges: Sequence[int] = (), at_path: Path | None = None) -> list[Problem]:
    """Problems for the gaps of ``schedule`` (layers and roster, no overrides) within
    ``[from_ms, until_ms)`` that its ``accept_gaps`` does not accept, reported on the field
    ``accept_gaps`` with their local times: at most :data:`MAX_GAPS_SHOWN`, then a count."""
    shifts = final_schedule(schedule, (), from_ms, until_ms, base, base_edges=base_edges)
    holes = unaccepted_gaps(schedule, shifts)
    path = (*(("schedules", schedule.role) if at_path is None else at_path), "accept_gaps")
    tz = zone(schedule.zone)
    out: list[Problem] = []
    for hole in holes[:MAX_GAPS_SHOWN]:
        begin = to_local(hole.from_ms, tz).isoformat(timespec="minutes")
        end = to_local(hole.until_ms, tz).isoformat(timespec="minutes")
        out.append(Problem(locate(path), render_path(path),
                           f"nobody holds {show(schedule.role)} from {begin} to {end} "
                           f"({schedule.zone}); staff it, or accept the gap with "
                           f'accept_gaps = [{{ from = {begin}, to = {end} }}]'))
    if len(holes) > MAX_GAPS_SHOWN:
        out.append(Problem(locate(path), render_path(path),
                           f"... and {len(holes) - MAX_GAPS_SHOWN} more gaps"))
    return out



def schedule_to_table(schedule: Schedule) -> dict[str, Any]:
    """The ``[schedules.<role>]`` table of ``schedule``, JSON-compatible (times as strings).

    The stored form: :func:`parse_schedule` reads it back to an equal schedule, so a
    stored copy goes through the same checks as the file.
    """
    accept: bool | list[dict[str, str]] = schedule.accept_gaps \
        if isinstance(schedule.accept_gaps, bool) else [
            {"from": _iso(a.start), "to": _iso(a.end)} for a in schedule.accept_gaps]
    return {"zone": schedule.zone, "accept_gaps": accept,
            "layers": [_layer_table(layer) for layer in schedule.layers]}


def _layer_table(layer: Layer) -> dict[str, Any]:
    out: dict[str, Any] = {"name": layer.name, "participants": list(layer.participants)}
    if layer.turn.rrule is not None:
        out["rrule"] = layer.turn.rrule
    else:
        letter = {"hours": "h", "days": "d", "weeks": "w"}[layer.turn.unit or "hours"]
        out["turn"] = f"{layer.turn.length}{letter}"
    out["handover"] = layer.handover.strftime("%H:%M")
    out["start"] = _iso(layer.start)
    if layer.end is not None:
        out["end"] = _iso(layer.end)
    if layer.restrictions:
        out["restrictions"] = [
            {"days": [DAY_NAMES[d] for d in sorted(r.days)], "from": r.start.strftime("%H:%M"),
             "to": r.end.strftime("%H:%M")} for r in layer.restrictions]
    return out


def _iso(value: date | datetime) -> str:
    if isinstance(value, datetime):
        whole = not value.second and not value.microsecond
        return value.isoformat(timespec="minutes" if whole else "auto")
    return value.isoformat()
