"""iCalendar (RFC 5545): the final schedule out as ``.ics``, and layers in from a calendar.

**Export** (:func:`export_ical`) writes one ``VEVENT`` per shift with someone on duty (gaps
are not events), optionally only one operator's. ``DTSTART``/``DTEND`` are written in UTC
(``...Z``): a shift is a pair of absolute instants, and UTC cannot be read two ways in the
repeated hour nor refer to a time that does not exist, whatever the reading calendar's
tz database. ``X-WR-TIMEZONE`` names the schedule's zone so calendars show it in local
time. Holders are in ``X-HOTLINE-HOLDERS`` (comma-separated) and the summary.

**Import** (:func:`import_layers`) turns each ``VEVENT`` into one single-participant
layer, later events above earlier ones:

- a one-off event: the layer holds its operator from ``DTSTART`` to ``DTEND``;
- a recurring event with ``RRULE`` ``FREQ=DAILY`` or ``FREQ=WEEKLY`` (``INTERVAL=1``,
  optionally ``BYDAY``, ``COUNT`` or ``UNTIL``) whose events last at most 24 hours (or the
  whole day/week): a layer restricted to the events' local windows, so a watch
  "every Monday 08:00-20:00 Europe/Warsaw" stays 08:00-20:00 across DST.

The operator is ``X-HOTLINE-HOLDERS`` (one id) or else the ``SUMMARY``. Anything else is
refused with :class:`CalendarError` naming the event: other frequencies or intervals,
``EXDATE``/``RDATE``/``EXRULE``, events with several holders, recurring events in another
zone than the schedule's (their local times would mean something else), all-day events.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from dateutil.rrule import rrulestr

from hotline.errors import HotlineError
from hotline.schedules.localtime import EPOCH, ONE_MS, to_local, zone
from hotline.schedules.model import Layer, Restriction, Shift, Turn
from hotline.schedules.parse import MAX_YEAR, MIN_YEAR

_PRODID: Final = "-//Hotline//schedules//EN"
_OPERATOR_RE: Final = re.compile(r"[a-z][a-z0-9._-]{0,31}")
_MAX_EVENTS: Final = 10_000
#: The largest calendar imported: 10,000 events of about a kilobyte each. Parsing is the
#: slow part (seconds per ten megabytes), so the size is checked before it.
MAX_CALENDAR_BYTES: Final = 10 * 1024 * 1024


class CalendarError(HotlineError):
    """A calendar that cannot become layers; the message names the event and the reason."""

    def __init__(self, message: str) -> None:
        super().__init__("bad-calendar", message)


def _utc(ms: int) -> datetime:
    return EPOCH + ms * ONE_MS


def export_ical(shifts: Sequence[Shift], zone_name: str, *, calendar_name: str,
                operator: str | None = None) -> bytes:
    """The shifts (one role's final schedule) as an iCalendar document (UTF-8, CRLF).

    Gaps are left out; with ``operator``, so is every shift that operator does not hold.
    Each event's UID is stable for the same role, start and holders, so a calendar that
    re-imports the export updates its events instead of duplicating them; ``DTSTAMP`` is
    the shift's start, so the same final schedule always gives the same bytes.
    """
    import icalendar  # export and import only: not loaded by an idle node (about 5 MB)

    zone(zone_name)  # KeyError for an unknown zone, before anything is written
    cal = icalendar.Calendar()
    cal.add("prodid", _PRODID)
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")  # a published schedule, not an invitation
    cal.add("x-wr-calname", calendar_name)
    cal.add("x-wr-timezone", zone_name)
    for shift in shifts:
        if shift.is_gap or (operator is not None and operator not in shift.holders):
            continue
        event = icalendar.Event()
        holders = ",".join(shift.holders)
        event.add("uid", f"{shift.role}-{shift.from_ms}-{holders}@hotline")
        event.add("dtstamp", _utc(shift.from_ms))
        event.add("dtstart", _utc(shift.from_ms))
        event.add("dtend", _utc(shift.until_ms))
        event.add("summary", f"{shift.role}: {', '.join(shift.holders)}")
        event.add("x-hotline-holders", holders)
        event.add("x-hotline-source", shift.source)
        cal.add_component(event)
    return bytes(cal.to_ical())


def _holder(event: Any, name: str) -> str:
    raw = _one(event, "x-hotline-holders", name)
    summary = _one(event, "summary", name)
    text = str(raw if raw is not None else summary or "").strip()
    if "," in text:
        raise CalendarError(f"{name}: has several holders ({text}); a layer has one person "
                            "at a time, so import it as several events")
    if not _OPERATOR_RE.fullmatch(text):
        raise CalendarError(f"{name}: {text!r} is not an operator id (put it in SUMMARY or "
                            "X-HOTLINE-HOLDERS)")
    return text


def _one(event: Any, key: str, name: str) -> Any:
    """The event's one ``key`` property, or None; a repeated one is refused."""
    prop = event.get(key)
    if isinstance(prop, list):
        raise CalendarError(f"{name}: has {len(prop)} {key.upper()} properties; one is allowed")
    return prop


def _moment(event: Any, key: str, name: str) -> datetime:
    prop = _one(event, key, name)
    if prop is None:
        raise CalendarError(f"{name}: has no {key.upper()}")
    value = getattr(prop, "dt", None)
    if value is None:
        raise CalendarError(f"{name}: {key.upper()} is not a date-time")
    if not isinstance(value, datetime):
        raise CalendarError(f"{name}: all-day events are not supported ({key.upper()} is a "
                            "date): give the watch's times")
    given = getattr(prop, "params", {}).get("TZID")
    if given is not None and value.tzinfo is None:
        # the library could not resolve the zone and left the time floating: read as the
        # schedule's local time it would mean another instant
        raise CalendarError(f"{name}: {key.upper()} is in the time zone {str(given)[:60]!r}, "
                            "which neither the file (VTIMEZONE) nor the tz database defines")
    return value


def _local(value: datetime, zone_name: str) -> datetime:
    """An event time as naive local time in the schedule's zone; floating means that zone."""
    if value.tzinfo is None:
        return value
    ms = (value - EPOCH) // ONE_MS
    return to_local(ms, zone(zone_name))


def import_layers(data: bytes, zone_name: str, *, prefix: str = "ics") -> list[Layer]:
    """The layers a calendar's events make for a schedule in ``zone_name`` (see above).

    Layers are named ``<prefix>-<n>`` (n from 1, in file order; later events are higher).
    Raises :class:`CalendarError` for a document that is not iCalendar or an event that is
    not supported, and KeyError for an unknown zone.
    """
    import icalendar  # see export_ical

    zone(zone_name)
    if len(data) > MAX_CALENDAR_BYTES:
        raise CalendarError(f"{len(data)} bytes; at most {MAX_CALENDAR_BYTES} are imported "
                            "at once")
    try:
        cal = icalendar.Calendar.from_ical(data)
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
        raise CalendarError(f"not an iCalendar document: {exc}") from None
    if not isinstance(cal, icalendar.Calendar):
        raise CalendarError("not an iCalendar document: no VCALENDAR")
    events = list(cal.walk("VEVENT"))
    if len(events) > _MAX_EVENTS:
        raise CalendarError(f"{len(events)} events; at most {_MAX_EVENTS} are imported at once")
    layers: list[Layer] = []
    for n, event in enumerate(events, start=1):
        name = f"event {n} ({str(event.get('uid', 'no UID'))[:80]})"
        try:
            layers.append(_layer(event, n, name, zone_name, prefix))
        except CalendarError:
            raise
        except (ValueError, TypeError, AttributeError, KeyError, IndexError,
                OverflowError) as exc:  # a malformed property the library let through
            raise CalendarError(f"{name}: cannot be read: {exc}") from None
    return layers


def _layer(event: Any, n: int, name: str, zone_name: str, prefix: str) -> Layer:
    """One event as a layer (see the module docstring); CalendarError if it cannot be."""
    for unsupported in ("exdate", "rdate", "exrule"):
        if event.get(unsupported) is not None:
            raise CalendarError(f"{name}: {unsupported.upper()} is not supported")
    # Both change what another event means (a moved occurrence replaces one of its
    # series; a cancelled event puts nobody on duty): a layer of its own would not.
    if event.get("recurrence-id") is not None:
        raise CalendarError(f"{name}: a changed occurrence (RECURRENCE-ID) cannot become a "
                            "layer; add it as an override (hotline schedule override)")
    if str(event.get("status", "")).upper() == "CANCELLED":
        raise CalendarError(f"{name}: the event is CANCELLED; leave it out of the file")
    who = _holder(event, name)
    start = _moment(event, "dtstart", name)
    if _one(event, "dtend", name) is None and _one(event, "duration", name) is not None:
        length = getattr(event["duration"], "dt", None)
        if not isinstance(length, timedelta):
            raise CalendarError(f"{name}: DURATION is not a duration")
        end = start + length
    else:
        end = _moment(event, "dtend", name)
    if (start.tzinfo is None) != (end.tzinfo is None):
        raise CalendarError(f"{name}: DTSTART and DTEND must both be floating or both "
                            "have a time zone")
    if end <= start:
        raise CalendarError(f"{name}: DTEND is not after DTSTART")
    rule = _one(event, "rrule", name)
    layer_name = f"{prefix}-{n}"
    if rule is None:
        begin, finish = _local(start, zone_name), _local(end, zone_name)
        layer = Layer(layer_name, (who,), Turn(1, "days", None),
                      begin.time().replace(second=0, microsecond=0, fold=0), begin, finish,
                      ())
    else:
        given = getattr(event.get("dtstart"), "params", {}).get("TZID")
        layer = _recurring(layer_name, name, who, start, end, rule, zone_name,
                           None if given is None else str(given))
    # what is printed must be what the directory takes
    for moment in (layer.start, layer.end):
        if moment is not None and not MIN_YEAR <= moment.year <= MAX_YEAR:
            raise _out_of_years(name)
    return layer


def _out_of_years(name: str) -> CalendarError:
    return CalendarError(f"{name}: a schedule runs in the years {MIN_YEAR} to {MAX_YEAR}; "
                         "this event is outside them")


def _recurring(layer_name: str, name: str, who: str, start: datetime, end: datetime,
               rule: Any, zone_name: str, given: str | None = None) -> Layer:
    tzid = getattr(start.tzinfo, "key", None)
    if start.tzinfo is not None and tzid != zone_name:
        # name the zone as the file does (a calendar app's own VTIMEZONE has no IANA key)
        raise CalendarError(f"{name}: a recurring event in {tzid or given or 'UTC'} cannot "
                            f"become a layer of a schedule in {zone_name} (its local times "
                            f"differ; write DTSTART with TZID={zone_name})")
    parts = {str(k).upper(): v for k, v in rule.items()}
    allowed = {"FREQ", "INTERVAL", "BYDAY", "COUNT", "UNTIL", "WKST"}
    extra = sorted(set(parts) - allowed)
    freq = str(parts["FREQ"][0]).upper() if "FREQ" in parts else ""
    interval = int(parts.get("INTERVAL", [1])[0])
    if extra or freq not in ("DAILY", "WEEKLY") or interval != 1 or \
            (freq == "DAILY" and "BYDAY" in parts):
        raise CalendarError(f"{name}: only FREQ=DAILY or FREQ=WEEKLY (BYDAY allowed) with "
                            f"INTERVAL=1 can become a layer; got {rule.to_ical().decode()}")
    begin = start.replace(tzinfo=None)
    length = end.replace(tzinfo=None) - begin
    weekdays = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
    if freq == "DAILY":
        days = frozenset(range(7))
    else:
        by = [str(d).upper() for d in parts.get("BYDAY", [weekdays[begin.weekday()]])]
        if any(d not in weekdays for d in by):
            raise CalendarError(f"{name}: BYDAY {','.join(by)} is not a list of weekdays "
                                "(MO..SU, without counts)")
        days = frozenset(weekdays.index(d) for d in by)
    day, week = timedelta(days=1), timedelta(weeks=1)
    whole = (length == day and len(days) == 7) or (length == week and len(days) == 1)
    if length > day and not whole:
        raise CalendarError(f"{name}: events of {length} are longer than a day but do not "
                            "fill the week; such a rule cannot become a layer")
    clock = begin.time().replace(second=0, microsecond=0, fold=0)
    restrictions: tuple[Restriction, ...] = ()
    if not whole:
        close = (datetime.combine(date(2000, 1, 3), clock) + length).time()
        restrictions = (Restriction(days, clock, close),)
    last_end: datetime | None = None
    if "COUNT" in parts or "UNTIL" in parts:
        text = rule.to_ical().decode()
        if "UNTIL" in parts:
            until = parts["UNTIL"][0]
            local_until = _local(until, zone_name) if isinstance(until, datetime) \
                else datetime.combine(until, time(23, 59))
            text = re.sub(r"UNTIL=[^;]*", f"UNTIL={local_until:%Y%m%dT%H%M%S}", text)
        last: datetime | None = None
        for last in rrulestr(text, dtstart=begin):  # not past MAX_YEAR: a huge COUNT
            if last.year > MAX_YEAR:                # would walk to the year 9999
                raise _out_of_years(name)
        if last is None:
            raise CalendarError(f"{name}: the rule has no occurrences")
        last_end = last + length
    return Layer(layer_name, (who,), Turn(1, "days", None), clock, begin, last_end,
                 restrictions)
