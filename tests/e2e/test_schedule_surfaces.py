"""The CLI, the operator API and the stored final schedule answer "who is on duty" alike
at every instant, on one real node, in a zone with a 30-minute DST shift
(Australia/Lord_Howe: 02:00 -> 02:30 on 4 October 2026, 02:00 -> 01:30 on 5 April 2026),
with an RRULE layer, a restriction that spans midnight and an override across a change.
Expected holders are worked out here on the local wall clock, not by the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.calls import apply_toml
from tests.e2e.test_cli import as_json
from tests.e2e.test_schedule_cli import Make, schedule, state
from tests.nodes import NodeProcess

LH = ZoneInfo("Australia/Lord_Howe")

LAYERS = """[schedules.ccp-do]
zone = "Australia/Lord_Howe"
accept_gaps = true

[[schedules.ccp-do.layers]]
name = "watch"
participants = ["ccp-1", "ccp-2"]
turn = "1d"
handover = "02:15"
start = 2026-01-01

[[schedules.ccp-do.layers]]
name = "nights"
participants = ["ccp-3", "ccp-4"]
rrule = "FREQ=WEEKLY;BYDAY=SA,SU"
handover = "23:00"
start = 2026-01-03
restrictions = [{ days = ["sat", "sun"], from = "23:00", to = "02:45" }]

"""


@pytest.fixture
def lord_howe(make_sqlite_node: Make) -> NodeProcess:
    from hotline.scenario import directory_toml

    node = make_sqlite_node("RU-GS")
    head, tail = directory_toml("RU-GS").split("[schedules.ccp-do]", 1)
    apply_toml(node, head + LAYERS + tail[tail.index("[chains."):])
    node.start()
    return node


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize("day", ["2026-04-05", "2026-10-04", "2026-04-04", "2026-10-03"])
def test_cli_api_and_show_agree_at_every_instant_across_a_half_hour_change(
        lord_howe: NodeProcess, day: str) -> None:
    node = lord_howe
    begin = datetime.fromisoformat(day + "T00:00").replace(tzinfo=LH) - timedelta(hours=3)
    shown = as_json(schedule(node, "show", "ccp-do", "--from",
                             begin.astimezone(UTC).isoformat(), "--to",
                             (begin + timedelta(hours=8)).astimezone(UTC).isoformat(),
                             "--json"))
    api = node.api("GET", f"/api/v1/schedules/ccp-do?from_ms={_ms(begin)}"
                          f"&until_ms={_ms(begin + timedelta(hours=8))}").json()["shifts"]
    assert [(s["from_ms"], s["until_ms"], s["holders"]) for s in shown["shifts"]] == \
        [(s["from_ms"], s["until_ms"], s["holders"]) for s in api]
    for minutes in range(0, 8 * 60, 15):
        at = begin + timedelta(minutes=minutes)
        at_ms = _ms(at)
        by_show = next(s["holders"] for s in shown["shifts"]
                       if s["from_ms"] <= at_ms < s["until_ms"])
        by_cli = as_json(schedule(node, "who", "ccp-do", "--at",
                                  at.astimezone(LH).isoformat(), "--json"))
        by_api = node.api("GET", f"/api/v1/schedules/ccp-do/who?at_ms={at_ms}").json()
        assert by_cli["at_ms"] == at_ms
        assert by_cli["holders"] == by_api["holders"] == by_show, (at.astimezone(LH), by_cli)


@pytest.mark.parametrize(("at", "holders"), [
    # spring, 4 October (a Sunday): 02:00 -> 02:30. Saturday's night turn (ccp-3, the
    # rule's Saturday occurrences) to 02:45; the daily watch's 02:15 hand-over does not
    # exist, so ccp-1's day (turn 276 from 1 January) begins at 02:30, under the night
    ("2026-10-03T22:00", "ccp-2"),
    ("2026-10-03T23:00", "ccp-3"),
    ("2026-10-04T01:59+10:30", "ccp-3"),
    ("2026-10-04T02:15", "ccp-3"),            # skipped: the first instant after, 02:30
    ("2026-10-04T02:44+11:00", "ccp-3"),
    ("2026-10-04T02:45", "ccp-1"),
    # autumn, 5 April (a Sunday): 02:00 -> 01:30. Both 01:45s are in the night turn
    ("2026-04-05T01:45+11:00", "ccp-3"),
    ("2026-04-05T01:45+10:30", "ccp-3"),
    ("2026-04-05T02:14", "ccp-3"),
    ("2026-04-05T02:45", "ccp-1"),
    ("2026-04-05T02:44+10:30", "ccp-3"),
    # the Sunday night turn is ccp-4's, from 23:00 to Monday 02:45; then Monday's watch
    ("2026-04-05T23:30", "ccp-4"),
    ("2026-04-06T02:30", "ccp-4"),
    ("2026-04-06T03:00", "ccp-2"),
])
def test_who_in_the_half_hour_changes_names_the_watch_worked_out_by_hand(
        lord_howe: NodeProcess, at: str, holders: str) -> None:
    answer = as_json(schedule(lord_howe, "who", "ccp-do", "--at", at, "--json"))
    assert answer["holders"] == [holders], answer


def test_a_night_turn_across_the_autumn_change_is_half_an_hour_longer(
        lord_howe: NodeProcess) -> None:
    shown = as_json(schedule(lord_howe, "show", "ccp-do", "--from", "2026-04-04T20:00",
                             "--to", "2026-04-05T06:00", "--json"))
    nights = [s for s in shown["shifts"] if s["source"] == "layer:nights"]
    assert len(nights) == 1
    assert (nights[0]["from"], nights[0]["until"]) == ("2026-04-04T23:00+11:00",
                                                       "2026-04-05T02:45+10:30")
    assert nights[0]["until_ms"] - nights[0]["from_ms"] == (4 * 60 + 15) * 60_000


def test_an_override_within_the_skipped_half_hour_is_refused_naming_the_skip(
        lord_howe: NodeProcess) -> None:
    """02:05 and 02:25 on 4 October do not exist on Lord Howe Island; both mean 02:30, so
    the override is empty: refused, exit 2, saying why ("must be after" alone reads as
    nonsense for 02:05 to 02:25), nothing stored."""
    before = state(lord_howe)
    result = schedule(lord_howe, "override", "ccp-do", "--operator", "ccp-1", "--from",
                      "2026-10-04T02:05", "--to", "2026-10-04T02:25", check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    said = " ".join(result.stderr.split())
    assert "--to: must be after --from" in said
    assert "2026-10-04T02:25 does not exist in Australia/Lord_Howe" in said
    assert "means 2026-10-04T02:30+11:00" in said
    assert result.stdout == ""
    assert state(lord_howe) == before
