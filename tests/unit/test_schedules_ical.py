"""iCalendar: the export parses with ``icalendar`` and round-trips through import."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hotline.schedules import (
    CalendarError,
    Layer,
    Override,
    Restriction,
    Schedule,
    Shift,
    Turn,
    export_ical,
    final_schedule,
    import_layers,
    to_local,
)

MIN = 60_000
HOUR = 60 * MIN


def ms(zone: str, year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def minutes(shifts: list[Shift]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for s in shifts:
        out.extend([s.holders] * ((s.until_ms - s.from_ms) // MIN))
    return out


WARSAW = Schedule("ccp-do", "Europe/Warsaw", (
    Layer("watch", ("ccp-1", "ccp-2", "ccp-3", "ccp-4"), Turn(12, "hours", None), time(8),
          date(2026, 1, 5)),
    Layer("weekend", ("ccp-9",), Turn(1, "weeks", None), time(8), date(2026, 1, 3),
          restrictions=(Restriction(frozenset({5}), time(10), time(14)),)),
))


def test_export_parses_with_icalendar_and_names_each_shift() -> None:
    zone = "Europe/Warsaw"
    start, end = ms(zone, 2026, 3, 27), ms(zone, 2026, 3, 31)
    shifts = final_schedule(WARSAW, [Override("sick", "ccp-do", "ccp-7", ms(zone, 2026, 3, 29, 10),
                                              ms(zone, 2026, 3, 29, 12))], start, end)
    data = export_ical(shifts, zone, calendar_name="ccp-do duty")
    cal = icalendar.Calendar.from_ical(data)
    assert str(cal["x-wr-timezone"]) == zone
    assert str(cal["x-wr-calname"]) == "ccp-do duty"
    events = list(cal.walk("VEVENT"))
    assert len(events) == len([s for s in shifts if s.holders])
    for event, shift in zip(events, [s for s in shifts if s.holders], strict=True):
        assert event["dtstart"].dt == datetime.fromtimestamp(shift.from_ms / 1000, UTC)
        assert event["dtend"].dt == datetime.fromtimestamp(shift.until_ms / 1000, UTC)
        assert str(event["x-hotline-holders"]) == ",".join(shift.holders)
        assert str(event["x-hotline-source"]) == shift.source
        assert str(event["summary"]) == f"ccp-do: {', '.join(shift.holders)}"
    # The spring-forward night watch is 11 hours; the override shows as its own event.
    night = [e for e in events if e["dtstart"].dt == datetime(2026, 3, 28, 19, tzinfo=UTC)]
    assert night
    assert night[0]["dtend"].dt == datetime(2026, 3, 29, 6, tzinfo=UTC)
    assert any(str(e["x-hotline-source"]) == "override:sick" for e in events)
    mine = icalendar.Calendar.from_ical(export_ical(shifts, zone, calendar_name="mine",
                                                    operator="ccp-2"))
    assert {str(e["x-hotline-holders"]) for e in mine.walk("VEVENT")} == {"ccp-2"}


def test_round_trip_through_import_gives_the_same_final_schedule() -> None:
    zone = "Europe/Warsaw"
    overrides = [Override("o1", "ccp-do", "ccp-7", ms(zone, 2026, 10, 25, 1),
                          ms(zone, 2026, 10, 25, 4)),
                 Override("o2", "ccp-do", "ccp-1", ms(zone, 2026, 10, 24, 9),
                          ms(zone, 2026, 10, 24, 23), unavailable=True)]
    start, end = ms(zone, 2026, 10, 20), ms(zone, 2026, 10, 30)
    shifts = final_schedule(WARSAW, overrides, start, end)
    layers = import_layers(export_ical(shifts, zone, calendar_name="x"), zone)
    again = final_schedule(Schedule("ccp-do", zone, tuple(layers)), [], start, end)
    assert minutes(again) == minutes(shifts)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[Schedule, list[Override], int, int]:
    zone = draw(st.sampled_from(["Europe/Warsaw", "America/New_York", "Europe/Moscow"]))
    day = draw(st.sampled_from([date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 8),
                                date(2026, 11, 1), date(2026, 6, 1)]))
    layers = []
    for i in range(draw(st.integers(1, 2))):
        people = tuple(draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=3,
                                     unique=True)))
        turn = draw(st.sampled_from([Turn(12, "hours", None), Turn(1, "days", None),
                                     Turn(5, "hours", None), Turn(0, None, "FREQ=DAILY")]))
        handover = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
        restrictions: tuple[Restriction, ...] = ()
        if draw(st.booleans()):
            restrictions = (Restriction(frozenset(draw(st.sets(st.integers(0, 6),
                                                               min_size=1))),
                                        time(draw(st.integers(0, 23))),
                                        time(draw(st.integers(0, 23)), 30)),)
        layers.append(Layer(f"l{i}", people, turn, handover, day - timedelta(days=3),
                            None, restrictions))
    start = ms(zone, day.year, day.month, day.day) - 24 * HOUR
    end = start + 72 * HOUR
    overrides = [Override(f"o{i}", "r", draw(st.sampled_from("abcde")),
                          a := start + draw(st.integers(0, 71 * 60)) * MIN,
                          a + draw(st.integers(1, 600)) * MIN, draw(st.booleans()))
                 for i in range(draw(st.integers(0, 2)))]
    return Schedule("r", zone, tuple(layers)), overrides, start, end


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=schedules())
def test_any_single_holder_schedule_round_trips_through_ics(
        case: tuple[Schedule, list[Override], int, int]) -> None:
    schedule, overrides, start, end = case
    shifts = final_schedule(schedule, overrides, start, end)
    assume(all(len(s.holders) <= 1 for s in shifts))
    data = export_ical(shifts, schedule.zone, calendar_name="r")
    layers = import_layers(data, schedule.zone)
    again = final_schedule(Schedule("r", schedule.zone, tuple(layers)), [], start, end)
    assert minutes(again) == minutes(shifts)


def test_several_holders_at_once_cannot_become_a_layer() -> None:
    shift = Shift("r", ("a", "b"), 0, HOUR, "override:x,y")
    with pytest.raises(CalendarError, match="several holders"):
        import_layers(export_ical([shift], "UTC", calendar_name="r"), "UTC")


def _calendar(*events: icalendar.Event) -> bytes:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//test//EN")
    cal.add("version", "2.0")
    for event in events:
        cal.add_component(event)
    return bytes(cal.to_ical())


def _event(who: str, start: datetime, end: datetime, rule: str | None = None) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", f"{who}-{start.isoformat()}")
    event.add("summary", who)
    event.add("dtstart", start)
    event.add("dtend", end)
    if rule is not None:
        event.add("rrule", icalendar.vRecur.from_ical(rule))
    return event


def test_a_weekly_recurring_watch_becomes_a_layer_at_the_same_local_time_all_year() -> None:
    zone, tz = "Europe/Warsaw", ZoneInfo("Europe/Warsaw")
    data = _calendar(_event("ccp-2", datetime(2026, 1, 5, 8, tzinfo=tz),
                            datetime(2026, 1, 5, 20, tzinfo=tz), "FREQ=WEEKLY;BYDAY=MO,TU"))
    (layer,) = import_layers(data, zone)
    assert layer.restrictions == (Restriction(frozenset({0, 1}), time(8), time(20)),)
    shifts = final_schedule(Schedule("r", zone, (layer,)), [], ms(zone, 2026, 1, 1),
                            ms(zone, 2027, 1, 1))
    held = [s for s in shifts if s.holders]
    assert len(held) == 52 * 2  # every Monday and Tuesday of 2026 from 5 January
    for s in held:
        local = to_local(s.from_ms, tz)
        assert local.weekday() in (0, 1)
        assert local.time() == time(8)
        assert s.until_ms - s.from_ms == 12 * HOUR
    # Round trip: the layer's final schedule, exported and imported again, is the same.
    back = import_layers(export_ical(shifts, zone, calendar_name="r"), zone)
    assert minutes(final_schedule(Schedule("r", zone, tuple(back)), [], ms(zone, 2026, 1, 1),
                                  ms(zone, 2027, 1, 1))) == minutes(shifts)


def test_a_daily_recurring_event_with_count_ends_after_its_last_occurrence() -> None:
    zone, tz = "America/New_York", ZoneInfo("America/New_York")
    data = _calendar(_event("ops-1", datetime(2026, 3, 6, 22, tzinfo=tz),
                            datetime(2026, 3, 7, 6, tzinfo=tz), "FREQ=DAILY;COUNT=4"))
    (layer,) = import_layers(data, zone)
    shifts = final_schedule(Schedule("r", zone, (layer,)), [], ms(zone, 2026, 3, 1),
                            ms(zone, 2026, 3, 20))
    held = [s for s in shifts if s.holders]
    assert [to_local(s.from_ms, tz) for s in held] == \
        [datetime(2026, 3, d, 22) for d in (6, 7, 8, 9)]
    # The night of 7-8 March loses an hour to DST; the others are 8 hours.
    assert [(s.until_ms - s.from_ms) // HOUR for s in held] == [8, 7, 8, 8]


@pytest.mark.parametrize(("rule", "message"), [
    ("FREQ=MONTHLY", "only FREQ=DAILY or FREQ=WEEKLY"),
    ("FREQ=WEEKLY;INTERVAL=2", "only FREQ=DAILY or FREQ=WEEKLY"),
    ("FREQ=DAILY;BYHOUR=8", "only FREQ=DAILY or FREQ=WEEKLY"),
])
def test_unsupported_rules_are_refused_by_name(rule: str, message: str) -> None:
    tz = ZoneInfo("Europe/Warsaw")
    data = _calendar(_event("a", datetime(2026, 1, 5, 8, tzinfo=tz),
                            datetime(2026, 1, 5, 20, tzinfo=tz), rule))
    with pytest.raises(CalendarError, match=message):
        import_layers(data, "Europe/Warsaw")


def test_other_unsupported_calendars_are_refused_clearly() -> None:
    ny = ZoneInfo("America/New_York")
    other_zone = _calendar(_event("a", datetime(2026, 1, 5, 8, tzinfo=ny),
                                  datetime(2026, 1, 5, 20, tzinfo=ny), "FREQ=DAILY"))
    with pytest.raises(CalendarError, match="cannot become a layer of a schedule in "
                                            "Europe/Warsaw"):
        import_layers(other_zone, "Europe/Warsaw")
    all_day = icalendar.Event()
    all_day.add("summary", "a")
    all_day.add("dtstart", date(2026, 1, 5))
    all_day.add("dtend", date(2026, 1, 6))
    with pytest.raises(CalendarError, match="all-day events are not supported"):
        import_layers(_calendar(all_day), "UTC")
    excluded = _event("a", datetime(2026, 1, 5, 8, tzinfo=UTC),
                      datetime(2026, 1, 5, 9, tzinfo=UTC), "FREQ=DAILY")
    excluded.add("exdate", datetime(2026, 1, 6, 8, tzinfo=UTC))
    with pytest.raises(CalendarError, match="EXDATE is not supported"):
        import_layers(_calendar(excluded), "UTC")
    nobody = _event("Night watch (Anna)", datetime(2026, 1, 5, 8, tzinfo=UTC),
                    datetime(2026, 1, 5, 9, tzinfo=UTC))
    with pytest.raises(CalendarError, match="is not an operator id"):
        import_layers(_calendar(nobody), "UTC")
    with pytest.raises(CalendarError, match="not an iCalendar document"):
        import_layers(b"hello", "UTC")


def test_duration_instead_of_dtend_and_malformed_events() -> None:
    watch = _event("a", datetime(2026, 1, 5, 8, tzinfo=UTC), datetime(2026, 1, 5, 9, tzinfo=UTC))
    del watch["dtend"]
    watch.add("duration", timedelta(hours=12))
    (layer,) = import_layers(_calendar(watch), "UTC")
    assert (layer.start, layer.end) == (datetime(2026, 1, 5, 8), datetime(2026, 1, 5, 20))
    frame = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n%s\r\nEND:VEVENT\r\nEND:VCALENDAR"
    for body, message in [
        (b"SUMMARY:a\r\nDTSTART:20260101T080000Z\r\nDTSTART:20260101T090000Z\r\n"
         b"DTEND:20260101T200000Z", "2 DTSTART properties"),
        (b"SUMMARY:a\r\nDTSTART:20260101T080000Z", "has no DTEND"),
        (b"SUMMARY:a\r\nDTSTART:20260101T080000Z\r\nDTEND:20260101T070000Z", "not after"),
        (b"SUMMARY:a\r\nDTSTART:20260101T080000\r\nDTEND:20260101T200000Z", "both be floating"),
        (b"SUMMARY:a,b\r\nDTSTART:20260101T080000Z\r\nDTEND:20260101T200000Z",
         "several holders"),
    ]:
        with pytest.raises(CalendarError, match=message):
            import_layers(frame % body, "UTC")


def test_the_same_schedule_exports_the_same_bytes() -> None:
    zone = "Europe/Warsaw"
    shifts = final_schedule(WARSAW, [], ms(zone, 2026, 3, 27), ms(zone, 2026, 3, 31))
    first = export_ical(shifts, zone, calendar_name="x")
    assert first == export_ical(list(shifts), zone, calendar_name="x")
    assert str(icalendar.Calendar.from_ical(first)["method"]) == "PUBLISH"


def test_events_whose_meaning_a_layer_cannot_keep_are_refused() -> None:
    """A moved occurrence (RECURRENCE-ID) replaces one occurrence of its series, and a
    cancelled event puts nobody on duty: as layers they would say otherwise, so they are
    refused by name, not imported."""
    tz = ZoneInfo("Europe/Warsaw")
    series = _event("a", datetime(2026, 3, 23, 8, 30, tzinfo=tz),
                    datetime(2026, 3, 23, 20, 30, tzinfo=tz), "FREQ=DAILY")
    moved = _event("b", datetime(2026, 3, 25, 10, tzinfo=tz), datetime(2026, 3, 25, 20, 30,
                                                                      tzinfo=tz))
    moved.add("recurrence-id", datetime(2026, 3, 25, 8, 30, tzinfo=tz))
    with pytest.raises(CalendarError, match=r"event 2 .*RECURRENCE-ID"):
        import_layers(_calendar(series, moved), "Europe/Warsaw")
    cancelled = _event("a", datetime(2026, 3, 23, 8, 30, tzinfo=tz),
                       datetime(2026, 3, 23, 20, 30, tzinfo=tz))
    cancelled.add("status", "CANCELLED")
    with pytest.raises(CalendarError, match=r"event 1 .*CANCELLED"):
        import_layers(_calendar(cancelled), "Europe/Warsaw")


@pytest.mark.parametrize(("start", "end", "rule"), [
    (datetime(1900, 1, 1, 8, tzinfo=UTC), datetime(1900, 1, 1, 9, tzinfo=UTC), None),
    (datetime(2026, 1, 1, 8, tzinfo=UTC), datetime(4000, 1, 1, 9, tzinfo=UTC), None),
    (datetime(2026, 1, 1, 8), datetime(2026, 1, 1, 9), "FREQ=DAILY;COUNT=999999999"),
    (datetime(2026, 1, 1, 8), datetime(2026, 1, 1, 9), "FREQ=WEEKLY;UNTIL=39990101T000000"),
])
def test_events_outside_the_years_a_directory_takes_are_refused_quickly(
        start: datetime, end: datetime, rule: str | None) -> None:
    """What import prints must be what ``roles apply`` takes (years 1971 to 2999), and a
    huge COUNT is not walked to the year 9999 first."""
    import time as clock

    began = clock.monotonic()
    with pytest.raises(CalendarError, match=r"event 1 .*years 1971 to 2999"):
        import_layers(_calendar(_event("a", start, end, rule)), "UTC")
    # a bound on the walk, not a speed test: walking 999,999,999 days takes hours; a
    # loaded CI machine takes seconds for the check itself
    assert clock.monotonic() - began < 60.0


def test_a_file_too_large_to_be_a_duty_calendar_is_refused_before_it_is_parsed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hotline.schedules.ical import MAX_CALENDAR_BYTES

    event = _event("a", datetime(2026, 1, 1, 8, tzinfo=UTC), datetime(2026, 1, 1, 9, tzinfo=UTC))
    event.add("description", "x" * 60_000)
    one = _calendar(event)
    data = one.replace(b"END:VCALENDAR", b"".join(
        one[one.index(b"BEGIN:VEVENT"):one.index(b"END:VCALENDAR")]
        for _ in range(MAX_CALENDAR_BYTES // len(one) + 1)) + b"END:VCALENDAR")
    parsed: list[int] = []

    def parse(cls: type, st: bytes, multiple: bool = False) -> object:
        parsed.append(len(st))
        raise AssertionError("parsed")

    monkeypatch.setattr("icalendar.Calendar.from_ical", classmethod(parse))
    with pytest.raises(CalendarError, match="bytes; at most"):
        import_layers(data, "UTC")
    assert parsed == []  # refused on its size, before the parser saw a byte


def test_a_recurring_event_in_a_calendar_apps_own_zone_is_refused_naming_that_zone() -> None:
    """Outlook writes its own zone names with a VTIMEZONE block: the refusal names the
    TZID the file gives, not "UTC"."""
    data = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook//EN\r\n"
        b"BEGIN:VTIMEZONE\r\nTZID:Central European Standard Time\r\nBEGIN:STANDARD\r\n"
        b"DTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
        b"RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n"
        b"DTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
        b"RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
        b"BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:a\r\n"
        b"DTSTART;TZID=Central European Standard Time:20260323T083000\r\n"
        b"DTEND;TZID=Central European Standard Time:20260323T203000\r\n"
        b"RRULE:FREQ=WEEKLY;BYDAY=MO\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    with pytest.raises(CalendarError, match="in Central European Standard Time cannot"):
        import_layers(data, "Europe/Warsaw")


def test_an_event_in_a_zone_nobody_knows_is_refused_not_read_as_local_time() -> None:
    data = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        b"SUMMARY:a\r\nDTSTART;TZID=Mars/Olympus:20260323T083000\r\n"
        b"DTEND;TZID=Mars/Olympus:20260323T203000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(CalendarError, match="Mars/Olympus"):
        import_layers(data, "Europe/Warsaw")
