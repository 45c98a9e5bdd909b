"""Faults found by breaking the schedules feature, each pinned by a test that fails
without its fix: a MONTHLY or YEARLY rule that silently skips months (or years) whose
day does not exist."""

from __future__ import annotations

import itertools
from datetime import date, datetime

from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.schedules import parse_schedule


def _parse(rule: str, start: date) -> list[str]:
    table = {"zone": "Australia/Lord_Howe", "layers": [{
        "name": "monthly", "participants": ["ann", "bob"], "rrule": rule,
        "handover": "08:00", "start": start.isoformat()}]}
    schedule, problems = parse_schedule("ops", table, lambda _path: 7)
    assert (schedule is None) == bool(problems)
    return [p.render("roles.toml") for p in problems]


def _months(a: datetime, b: datetime) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


@settings(max_examples=150, deadline=None)
@given(start=st.dates(min_value=date(1971, 1, 1), max_value=date(2990, 12, 31)),
       rule=st.sampled_from(["FREQ=MONTHLY", "FREQ=MONTHLY;INTERVAL=2", "FREQ=YEARLY",
                             "FREQ=YEARLY;INTERVAL=3", "FREQ=YEARLY;BYMONTH=2",
                             "FREQ=YEARLY;BYMONTH=4,6", "FREQ=YEARLY;BYMONTH=1,3"]))
def test_an_accepted_rule_that_names_no_day_never_skips_a_period(start: date,
                                                                  rule: str) -> None:
    """RFC 5545 repeats DTSTART's day of the month: from the 31st, FREQ=MONTHLY skips the
    months without a 31st and a turn lasts two months; from 29 February, FREQ=YEARLY hands
    over only in leap years. The directory must refuse such a rule, naming line and field
    and the way to say "the last day"; every rule it takes hands over in every period."""
    problems = _parse(rule, start)
    if problems:
        assert len(problems) == 1, problems
        assert problems[0].startswith("roles.toml:7: schedules.ops.layers[0].rrule:"), problems
        assert "BYMONTHDAY=-1" in problems[0], problems
        return
    anchor = datetime(start.year, start.month, start.day, 8)
    hand_overs = list(itertools.islice(rrulestr(rule, dtstart=anchor), 25))
    interval = int(rule.split("INTERVAL=")[1]) if "INTERVAL=" in rule else 1
    months = [int(m) for m in rule.split("BYMONTH=")[1].split(",")] if "BYMONTH=" in rule \
        else None
    for a, b in itertools.pairwise(hand_overs):
        if months is None:  # every INTERVAL months (years), none left out
            assert _months(a, b) == interval * (12 if "YEARLY" in rule else 1), (a, b)
        else:  # the next chosen month, within the year
            assert _months(a, b) <= 12, (a, b)
            assert b.month in months, (a, b)


def test_the_last_day_of_the_month_is_written_with_bymonthday_minus_one() -> None:
    assert _parse("FREQ=MONTHLY;BYMONTHDAY=-1", date(2026, 1, 31)) == []
    assert _parse("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1", date(2028, 2, 29)) == []
    assert _parse("FREQ=MONTHLY", date(2026, 1, 28)) == []
    assert _parse("FREQ=YEARLY", date(2026, 1, 31)) == []  # January always has a 31st
    feb29 = _parse("FREQ=YEARLY", date(2028, 2, 29))
    assert len(feb29) == 1, feb29
    assert "leap years" in feb29[0]
    day31 = _parse("FREQ=MONTHLY", date(2026, 1, 31))
    assert len(day31) == 1, day31
    assert "day 31" in day31[0]
