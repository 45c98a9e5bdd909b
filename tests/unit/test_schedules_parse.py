"""Reading ``[schedules.<role>]`` tables: the documented shape, and every problem by line."""

from __future__ import annotations

import json
import tomllib
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.calls.directory.locate import Locator
from hotline.problems import Problem
from hotline.schedules import (
    AcceptedGap,
    Layer,
    Restriction,
    Schedule,
    Turn,
    gap_problems,
    parse_schedule,
    schedule_to_table,
    to_ms,
)
from hotline.schedules.localtime import zone

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schedules.md"

GOOD = """\
[schedules.ccp-do]            # role id
zone = "Europe/Moscow"
accept_gaps = false
[[schedules.ccp-do.layers]]
name = "watch"
participants = ["ccp-1", "ccp-2", "ccp-3", "ccp-4"]
turn = "12h"
handover = "08:00"
start = "2026-01-05"
end = "2027-01-01"
restrictions = [{days = ["mon","tue"], from = "08:00", to = "20:00"}]
"""


def parse(text: str, role: str = "ccp-do", **kw: object) -> tuple[Schedule | None,
                                                                    list[Problem]]:
    data = tomllib.loads(text)
    return parse_schedule(role, data["schedules"][role], Locator(text).line_of, **kw)  # type: ignore[arg-type]


def rendered(problems: list[Problem]) -> list[str]:
    return [p.render("roles.toml") for p in problems]


def test_the_documented_shape_parses() -> None:
    schedule, problems = parse(GOOD)
    assert problems == []
    assert schedule == Schedule(
        "ccp-do", "Europe/Moscow",
        (Layer("watch", ("ccp-1", "ccp-2", "ccp-3", "ccp-4"), Turn(12, "hours", None),
               time(8), date(2026, 1, 5), date(2027, 1, 1),
               (Restriction(frozenset({0, 1}), time(8), time(20)),)),),
        False)


def test_the_example_in_docs_schedules_md_parses() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    data = tomllib.loads(block)
    for role, table in data["schedules"].items():
        schedule, problems = parse_schedule(role, table, Locator(block).line_of)
        assert problems == [], rendered(problems)
        assert schedule is not None
        assert schedule.layers


def test_toml_dates_times_rrule_and_accepted_gaps() -> None:
    schedule, problems = parse("""\
[schedules.nmcc-do]
zone = "America/New_York"
accept_gaps = [{ from = 2026-12-24T18:00:00, to = 2026-12-26 }]
[[schedules.nmcc-do.layers]]
name = "weekday watch"
participants = ["a", "b"]
rrule = "FREQ=WEEKLY;BYDAY=MO,TH"
handover = 07:30:00
start = 2026-01-05T07:30:00
""", role="nmcc-do")
    assert problems == []
    assert schedule is not None
    (layer,) = schedule.layers
    assert layer.turn == Turn(0, None, "FREQ=WEEKLY;BYDAY=MO,TH")
    assert layer.handover == time(7, 30)
    assert layer.start == datetime(2026, 1, 5, 7, 30)
    assert schedule.accept_gaps == (AcceptedGap(datetime(2026, 12, 24, 18),
                                                datetime(2026, 12, 26)),)


BAD = """\
[schedules.ccp-do]
zone = "Europe/Warsw"
accept_gap = true
[[schedules.ccp-do.layers]]
name = "watch"
participants = []
turn = "12x"
handover = "25:00"
start = "2026-01-05"
[[schedules.ccp-do.layers]]
name = "watch"
participants = ["a", "a", 3]
turn = "1d"
rrule = "FREQ=DAILY"
handover = "08:00"
start = 2026-03-01T08:00:00+01:00
[[schedules.ccp-do.layers]]
name = "third"
participants = ["b"]
handover = "08:00"
start = "2026-05-01"
end = "2026-04-01"
restrictions = [{ days = ["mon", "funday"], from = "8:00" }, { day = "tue" }]
colour = "red"
[[schedules.ccp-do.layers]]
name = "fourth"
participants = ["c"]
rrule = "FREQ=MINUTELY"
handover = "08:00"
start = "2026-05-01"
[[schedules.ccp-do.layers]]
name = "fifth"
participants = ["c"]
rrule = "FREQ=WEEKLY;BYDAY=XX"
handover = "08:00"
start = "2026-05-01"
"""


def test_every_problem_is_reported_with_its_line_and_field() -> None:
    schedule, problems = parse(BAD)
    assert schedule is None
    got = sorted(rendered(problems))
    expected = sorted([
        'roles.toml:2: schedules.ccp-do.zone: unknown time zone "Europe/Warsw" '
        '(did you mean "Europe/Warsaw"?)',
        'roles.toml:3: schedules.ccp-do.accept_gap: unknown field "accept_gap" '
        '(did you mean "accept_gaps"?)',
        "roles.toml:6: schedules.ccp-do.layers[0].participants: must name at least one "
        "operator",
        'roles.toml:7: schedules.ccp-do.layers[0].turn: "12x" is not a turn length (use '
        'e.g. "12h", "1d" or "1w", or rrule = "FREQ=..." instead)',
        'roles.toml:8: schedules.ccp-do.layers[0].handover: "25:00" is not a time of day: '
        'use 24-hour HH:MM, e.g. "08:00"',
        'roles.toml:11: schedules.ccp-do.layers[1].name: "watch" names another layer too',
        'roles.toml:12: schedules.ccp-do.layers[1].participants[1]: "a" is listed twice (a '
        "rotation lists each participant once; add a layer for a second pattern)",
        "roles.toml:12: schedules.ccp-do.layers[1].participants[2]: must be an operator id, "
        "not an integer (3)",
        "roles.toml:14: schedules.ccp-do.layers[1].rrule: give either turn or rrule, not both",
        "roles.toml:16: schedules.ccp-do.layers[1].start: 2026-03-01T08:00:00+01:00 has a UTC "
        "offset: write the local time in the schedule's zone, without an offset (e.g. "
        "2026-01-05T08:00)",
        'roles.toml:17: schedules.ccp-do.layers[2].turn: missing: how long a turn is (use '
        'e.g. "12h", "1d" or "1w", or rrule = "FREQ=..." instead)',
        'roles.toml:22: schedules.ccp-do.layers[2].end: "2026-04-01" is not after the start '
        "(2026-05-01T08:00)",
        'roles.toml:23: schedules.ccp-do.layers[2].restrictions[0].days[1]: "funday" is not '
        'one of "mon", "tue", "wed", "thu", "fri", "sat", "sun"',
        'roles.toml:23: schedules.ccp-do.layers[2].restrictions[0].from: "8:00" is not a time '
        'of day: use 24-hour HH:MM, e.g. "08:00"',
        'roles.toml:23: schedules.ccp-do.layers[2].restrictions[0].to: missing: a time of '
        'day, e.g. to = "08:00"',
        'roles.toml:23: schedules.ccp-do.layers[2].restrictions[1].day: unknown field "day" '
        '(did you mean "days"?)',
        'roles.toml:23: schedules.ccp-do.layers[2].restrictions[1].days: missing: the days '
        'the window opens, e.g. days = ["mon", "tue"] (of "mon", "tue", "wed", "thu", '
        '"fri", "sat", "sun")',
        'roles.toml:23: schedules.ccp-do.layers[2].restrictions[1].from: missing: a time of '
        'day, e.g. from = "08:00"',
        'roles.toml:23: schedules.ccp-do.layers[2].restrictions[1].to: missing: a time of '
        'day, e.g. to = "08:00"',
        'roles.toml:24: schedules.ccp-do.layers[2].colour: unknown field "colour" (allowed '
        'here: end, handover, name, participants, restrictions, rrule, start, turn)',
        'roles.toml:28: schedules.ccp-do.layers[3].rrule: "FREQ=MINUTELY" needs '
        "FREQ=YEARLY|MONTHLY|WEEKLY|DAILY|HOURLY (turns shorter than an hour are not "
        "supported)",
    ])
    (rrule_problem,) = [p for p in problems if p.field.endswith("layers[4].rrule")]
    assert rrule_problem.line == 34
    assert "is not a valid RRULE" in rrule_problem.message
    assert [g for g in got if "layers[4]" not in g] == expected


@pytest.mark.parametrize(("table", "field", "message"), [
    ({}, "schedules.r.zone", "missing: the IANA time zone"),
    ({"zone": "UTC"}, "schedules.r.layers", "missing: at least one layer"),
    ({"zone": "UTC", "layers": []}, "schedules.r.layers", "must be a non-empty array"),
    ({"zone": 5, "layers": []}, "schedules.r.zone", "must be an IANA time zone name"),
    ({"zone": "UTC", "accept_gaps": "yes", "layers": []}, "schedules.r.accept_gaps",
     "must be true, false or an array"),
    ({"zone": "UTC", "accept_gaps": [{"from": "2026-01-02", "to": "2026-01-01"}],
      "layers": []}, "schedules.r.accept_gaps[0].to", 'is not after "2026-01-02"'),
    ({"zone": "UTC", "layers": [{"name": "w", "participants": ["a"], "turn": "0h",
                                 "handover": "08:00", "start": "2026-01-01"}]},
     "schedules.r.layers[0].turn", "is not longer than zero"),
    ({"zone": "UTC", "layers": [{"name": "w", "participants": ["a"], "turn": "400w",
                                 "handover": "08:00", "start": "2026-01-01"}]},
     "schedules.r.layers[0].turn", "longer than the limit of 52w"),
    ({"zone": "UTC", "layers": [{"name": "w", "participants": ["a"],
                                 "rrule": "FREQ=DAILY;COUNT=1", "handover": "08:00",
                                 "start": "2026-01-01"}]},
     "schedules.r.layers[0].rrule", "fewer than two hand-overs"),
    ({"zone": "UTC", "layers": [{"name": "w", "participants": ["a"],
                                 "rrule": "DTSTART:20260101T000000\nRRULE:FREQ=DAILY",
                                 "handover": "08:00", "start": "2026-01-01"}]},
     "schedules.r.layers[0].rrule", "must be one RRULE value"),
    *[({"zone": "UTC", "layers": [{"name": "w", "participants": ["a"], "rrule": rule,
                                   "handover": "08:00", "start": "2026-01-01"}]},
       "schedules.r.layers[0].rrule", message) for rule, message in [
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be a whole number from 1 to 1000"),
        ("FREQ=DAILY;BYSETPOS=2", "BYSETPOS is not supported here"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "never happens"),
        ("FREQ=HOURLY;INTERVAL=24;BYHOUR=7", "may never meet"),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=TU", "may never meet"),
        ("FREQ=DAILY;UNTIL=20270101T000000Z", "without the Z"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20270101", "COUNT or UNTIL, not both"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice"),
        ("FREQ=MINUTELY", "turns shorter than an hour are not supported"),
        ("FREQ=MONTHLY;INTERVAL=12;BYMONTH=6", "fewer than two hand-overs"),
    ]],
    ({"zone": "UTC", "layers": [{"name": "w", "participants": ["a"], "turn": "1d",
                                 "handover": "08:00", "start": "1066-10-14"}]},
     "schedules.r.layers[0].start", "outside the years"),
    ({"zone": "UTC", "layers": [{"name": "", "participants": ["a"], "turn": "1d",
                                 "handover": "08:00:30", "start": "2026-01-01"}]},
     "schedules.r.layers[0].name", "is not a layer name"),
    ({"zone": "UTC", "layers": [{"participants": "a", "turn": "1d", "start": "2026-01-01"}]},
     "schedules.r.layers[0].handover", "missing: the local time turns change"),
    ({"zone": "UTC", "layers": ["watch"]}, "schedules.r.layers[0]", "must be a table"),
    ("zone", "schedules.r", "must be a table"),
])
def test_each_kind_of_problem_names_its_field(table: object, field: str, message: str) -> None:
    schedule, problems = parse_schedule("r", table, lambda _path: None)  # type: ignore[arg-type]
    assert schedule is None
    assert any(p.field == field and message in p.message for p in problems), problems


def test_rrules_are_read_in_either_case_and_kept_in_upper_case() -> None:
    schedule, problems = parse_schedule("r", {"zone": "UTC", "layers": [
        {"name": "w", "participants": ["a"], "rrule": "rrule:freq=weekly;byday=mo,th",
         "handover": "08:00", "start": "2026-01-01"}]}, lambda _p: None)
    assert problems == []
    assert schedule is not None
    assert schedule.layers[0].turn == Turn(0, None, "FREQ=WEEKLY;BYDAY=MO,TH")


@pytest.mark.parametrize("name", ["", "a" * 10_000, "Europe", "../../etc/localtime",
                                  "Europe/Warsaw/", "x\x00", "europe/warsaw"])
def test_zone_names_that_are_not_zones_are_problems_not_crashes(name: str) -> None:
    _, problems = parse_schedule("r", {"zone": name, "layers": []}, lambda _p: None)
    assert any(p.field == "schedules.r.zone" and "unknown time zone" in p.message
               for p in problems)


def test_participants_must_be_operators_holding_the_role() -> None:
    operators = {"ccp-1": {"ccp-do"}, "ccp-2": {"ccp-do"}, "ccp-3": {"other"}}
    schedule, problems = parse(GOOD, operators=operators)
    assert schedule is None
    assert sorted(rendered(problems)) == [
        'roles.toml:6: schedules.ccp-do.layers[0].participants[2]: operator "ccp-3" does not '
        'hold role "ccp-do" (their roles: other)',
        'roles.toml:6: schedules.ccp-do.layers[0].participants[3]: undefined operator '
        '"ccp-4" (did you mean "ccp-3"?)',
    ]


def test_gaps_are_problems_unless_accepted() -> None:
    schedule, problems = parse(GOOD)
    assert schedule is not None
    assert not problems
    tz = zone("Europe/Moscow")
    week = (to_ms(datetime(2026, 3, 2), tz), to_ms(datetime(2026, 3, 9), tz))
    found = gap_problems(schedule, *week, Locator(GOOD).line_of)
    # Only Monday and Tuesday 08:00-20:00 are staffed: the rest of the week is a gap.
    assert [p.render("roles.toml") for p in found][:2] == [
        'roles.toml:3: schedules.ccp-do.accept_gaps: nobody holds "ccp-do" from '
        "2026-03-02T00:00 to 2026-03-02T08:00 (Europe/Moscow); staff it, or accept the gap "
        "with accept_gaps = [{ from = 2026-03-02T00:00, to = 2026-03-02T08:00 }]",
        'roles.toml:3: schedules.ccp-do.accept_gaps: nobody holds "ccp-do" from '
        "2026-03-02T20:00 to 2026-03-03T08:00 (Europe/Moscow); staff it, or accept the gap "
        "with accept_gaps = [{ from = 2026-03-02T20:00, to = 2026-03-03T08:00 }]",
    ]
    assert len(found) == 3
    accepted = GOOD.replace("accept_gaps = false", "accept_gaps = true")
    schedule, _ = parse(accepted)
    assert schedule is not None
    assert gap_problems(schedule, *week, lambda _p: None) == []
    windows = GOOD.replace("accept_gaps = false", 'accept_gaps = [{from = "2026-03-02", to = '
                                                  '"2026-03-03T08:00"}]')
    schedule, _ = parse(windows)
    assert schedule is not None
    rest = gap_problems(schedule, *week, lambda _p: None)
    assert "from 2026-03-03T20:00 to 2026-03-09T00:00" in rest[0].message
    # The roster, as the lowest layer, fills gaps too.
    assert gap_problems(schedule, *week, lambda _p: None, base=lambda _t: ("duty-1",)) == []


names = st.text("abcdefgh-", min_size=1, max_size=8).map(lambda s: "x" + s)
whole_minutes = st.builds(time, st.integers(0, 23), st.integers(0, 59))
days_ = st.dates(date(1971, 1, 1), date(2998, 1, 1))


@st.composite
def any_schedule(draw: st.DrawFn) -> Schedule:
    layers = []
    for i in range(draw(st.integers(1, 3))):
        handover = draw(whole_minutes)
        start_day = draw(days_)
        start: date | datetime = start_day
        if draw(st.booleans()):
            start = datetime.combine(start_day, draw(whole_minutes))
            start = start.replace(second=draw(st.sampled_from([0, 0, 59])),
                                  microsecond=draw(st.sampled_from([0, 0, 1000, 999_000])))
        end: date | datetime | None = None
        if draw(st.booleans()):
            end = start_day + timedelta(days=draw(st.integers(1, 400)))
        turn = draw(st.one_of(
            st.builds(Turn, st.integers(1, 744), st.just("hours"), st.none()),
            st.builds(Turn, st.integers(1, 366), st.just("days"), st.none()),
            st.builds(Turn, st.integers(1, 52), st.just("weeks"), st.none()),
            st.sampled_from([Turn(0, None, "FREQ=DAILY;INTERVAL=3"),
                             Turn(0, None, "FREQ=MONTHLY;BYMONTHDAY=1,15")])))
        restrictions = tuple(draw(st.lists(st.builds(
            Restriction, st.frozensets(st.integers(0, 6), min_size=1), whole_minutes,
            whole_minutes), max_size=3)))
        people = tuple(draw(st.lists(names, min_size=1, max_size=5, unique=True)))
        layers.append(Layer(f"layer {i}", people, turn, handover, start, end, restrictions))
    accept: bool | tuple[AcceptedGap, ...] = draw(st.booleans())
    if draw(st.booleans()):
        a = datetime.combine(draw(days_), draw(whole_minutes))
        accept = (AcceptedGap(a, a + timedelta(minutes=draw(st.integers(1, 10**6)))),)
    zone_name = draw(st.sampled_from(["Europe/Warsaw", "UTC", "Asia/Riyadh"]))
    return Schedule("r", zone_name, tuple(layers), accept)


@settings(max_examples=200, deadline=None)
@given(schedule=any_schedule())
def test_the_stored_table_reads_back_to_the_same_schedule(schedule: Schedule) -> None:
    table = schedule_to_table(schedule)
    assert json.loads(json.dumps(table)) == table
    back, problems = parse_schedule("r", table, lambda _p: None)
    assert problems == []
    assert back == schedule


junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=12), st.sampled_from(["12h", "1d", "08:00", "2026-01-05",
                                                      "FREQ=DAILY", "mon", "UTC", "x"]),
              st.dates(), st.times(), st.datetimes()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["days", "from", "to", "x"]),
                                            inner, max_size=3)),
    max_leaves=8)
layer_tables = st.dictionaries(
    st.sampled_from(["name", "participants", "turn", "rrule", "handover", "start", "end",
                     "restrictions", "colour"]), junk, max_size=8)


@settings(max_examples=300, deadline=None)
@given(table=st.dictionaries(st.sampled_from(["zone", "accept_gaps", "layers", "oops"]),
                             st.one_of(junk, st.lists(layer_tables, max_size=3)), max_size=4))
def test_any_table_gives_a_schedule_or_problems_that_name_their_field(
        table: dict[str, object]) -> None:
    schedule, problems = parse_schedule("r", table, lambda path: len(path))
    assert (schedule is None) == bool(problems)
    for p in problems:
        assert p.field.startswith("schedules.r")
        # the line locate gave for the problem's own path (here: the path's length)
        assert p.line == p.field.count(".") + 1 + p.field.count("[")
        assert p.message


VALID_LAYER = {"name": "watch", "participants": ["a", "b"], "turn": "12h", "handover": "08:00",
               "start": "2026-01-05", "end": "2027-01-01",
               "restrictions": [{"days": ["mon"], "from": "08:00", "to": "20:00"}]}


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from([*VALID_LAYER, "rrule"]), value=junk)
def test_one_bad_field_in_a_good_layer_is_named(key: str, value: object) -> None:
    layer = {**VALID_LAYER, key: value}
    schedule, problems = parse_schedule("r", {"zone": "UTC", "layers": [layer]},
                                        lambda _p: None)
    assert (schedule is None) == bool(problems)
    for p in problems:
        assert p.field.startswith("schedules.r.layers[0]")


@pytest.mark.parametrize("rule", [
    "FREQ=YEARLY;BYMONTHDAY=0",          # the library drops 0: it would run every day
    "FREQ=MONTHLY;BYMONTHDAY=0,1",
    "FREQ=MONTHLY;BYMONTHDAY=-0",
    "FREQ=DAILY;BYHOUR=8;BYMINUTE=0,30",  # a 30-minute turn
    "FREQ=HOURLY;BYMINUTE=" + ",".join(str(m) for m in range(60)),  # a turn a minute
])
def test_rules_that_mean_something_else_or_turn_within_the_hour_are_refused(rule: str
                                                                           ) -> None:
    table = {"zone": "UTC", "layers": [{"name": "w", "participants": ["a"], "rrule": rule,
                                        "handover": "08:00", "start": "2026-01-01"}]}
    schedule, problems = parse_schedule("r", table, lambda _path: None)
    assert schedule is None
    assert [p.field for p in problems] == ["schedules.r.layers[0].rrule"], problems


@settings(max_examples=60, deadline=None)
@given(freq=st.sampled_from(["DAILY", "HOURLY", "WEEKLY"]),
       hours=st.lists(st.integers(0, 23), min_size=1, max_size=4, unique=True),
       minutes=st.lists(st.integers(0, 59), min_size=1, max_size=3, unique=True))
def test_an_accepted_rule_never_hands_over_within_the_hour(freq: str, hours: list[int],
                                                           minutes: list[int]) -> None:
    from hotline.schedules.final import layer_turns

    rule = (f"FREQ={freq};BYHOUR={','.join(map(str, hours))};"
            f"BYMINUTE={','.join(map(str, minutes))}")
    table = {"zone": "Europe/Warsaw", "accept_gaps": True, "layers": [{
        "name": "w", "participants": ["a", "b"], "rrule": rule, "handover": "08:00",
        "start": "2026-03-20"}]}
    schedule, _problems = parse_schedule("r", table, lambda _path: None)
    if schedule is None:
        return
    spans = layer_turns(schedule.layers[0], "Europe/Warsaw",
                        to_ms(datetime(2026, 3, 21), zone("Europe/Warsaw")),
                        to_ms(datetime(2026, 4, 4), zone("Europe/Warsaw")))
    whole = spans[1:-1]  # the first and last are clipped to the range
    # a turn is at least an hour on the local clock; only the skipped hour of 29 March
    # (02:00 to 03:00 in Warsaw, 01:00 UTC) can shorten one
    change = to_ms(datetime(2026, 3, 29, 3), zone("Europe/Warsaw"))
    assert all(end - begin >= 3_600_000 or begin - 3_600_000 <= change <= end + 3_600_000
               for begin, end, _who in whole), rule
