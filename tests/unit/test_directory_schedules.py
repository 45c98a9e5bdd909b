"""``[schedules.<role>]`` in the directory file: checked with line and field, participants
holding the role, gaps an error unless accepted, the stored form round-tripping — and a
directory without schedules stored exactly as before (its digest unchanged)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hotline.calls.directory import Directory, DirectoryError, parse_directory
from hotline.scenario import PARTIES, directory_toml
from hotline.schedules.model import Override
from hotline.store.directory import digest_of

BASE = """
[roles.duty]
title = { en = "Duty officer" }

[roles.other]
title = { en = "Other" }

[operators.duty-1]
name = "One"
roles = ["duty"]

[operators.duty-2]
name = "Two"
roles = ["duty"]

[operators.other-1]
name = "Other"
roles = ["other"]
"""

SCHEDULE = """
[schedules.duty]
zone = "Europe/Warsaw"

[[schedules.duty.layers]]
name = "watch"
participants = ["duty-1", "duty-2"]
turn = "12h"
handover = "08:00"
start = 2026-01-05
"""

#: 2026-03-29 12:00 in Warsaw (CEST, UTC+2), the day summer time begins
NOON = int(datetime(2026, 3, 29, 10, 0, tzinfo=UTC).timestamp() * 1000)


def problems(text: str, now_ms: int = NOON) -> list[str]:
    with pytest.raises(DirectoryError) as caught:
        parse_directory(text, "d.toml", now_ms)
    return caught.value.message.splitlines()


def test_a_schedule_names_who_is_on_duty_and_overrides_win() -> None:
    d = parse_directory(BASE + SCHEDULE, "d.toml", NOON)
    # 12-hour turns from 2026-01-05 08:00: an even number of them by 2026-03-29 08:00
    assert d.on_duty("duty", NOON) == ("duty-1",)
    assert d.on_duty("duty", NOON + 9 * 3600_000) == ("duty-2",)  # after 20:00
    taken = Override("1", "duty", "duty-2", NOON, NOON + 60_000)
    assert d.on_duty("duty", NOON, [taken]) == ("duty-2",)
    # an override for an operator who does not hold the role is left out
    stranger = Override("2", "duty", "other-1", NOON, NOON + 60_000)
    assert d.on_duty("duty", NOON, [stranger]) == ("duty-1",)
    # a role without a schedule: the roster alone, as before
    assert d.on_duty("other", NOON) == ()


def test_problems_name_line_and_field() -> None:
    bad = SCHEDULE.replace('turn = "12h"', 'turn = "12x"').replace(
        '["duty-1", "duty-2"]', '["duty-1", "other-1"]')
    lines = problems(BASE + bad)
    text = BASE + bad
    turn_line = text.splitlines().index('turn = "12x"') + 1
    assert any(f"d.toml:{turn_line}: schedules.duty.layers[0].turn:" in x for x in lines), lines
    assert any("schedules.duty.layers[0].participants[1]" in x and "does not hold role"
               in x for x in lines), lines
    assert any("schedules.nobody" in x for x in problems(
        BASE + SCHEDULE.replace("schedules.duty]", "schedules.nobody]", 1)))


def test_a_gap_ahead_is_an_error_unless_accepted() -> None:
    ending = SCHEDULE + "end = 2026-04-01\n"
    lines = problems(BASE + ending)
    assert any("schedules.duty.accept_gaps" in x and "nobody holds" in x for x in lines)
    # the same file long before the end: no gap within the 14 days checked
    parse_directory(BASE + ending, "d.toml", NOON - 30 * 86_400_000)
    accepted = ending.replace('zone = "Europe/Warsaw"',
                              'zone = "Europe/Warsaw"\naccept_gaps = true')
    d = parse_directory(BASE + accepted, "d.toml", NOON)
    # and the stored copy is read back whatever the time (the gap is the watch's alarm)
    assert Directory.from_dict(d.to_dict()).to_dict() == d.to_dict()


def test_the_stored_form_round_trips_and_old_digests_stay() -> None:
    d = parse_directory(BASE + SCHEDULE + '\n[settings]\ngap_alarm_horizon = "6h"\n',
                        "d.toml", NOON)
    body = d.to_dict()
    assert body["schedules"]["duty"]["layers"][0]["turn"] == "12h"
    assert body["settings"]["gap_alarm_horizon_ms"] == 6 * 3600_000
    again = Directory.from_dict(body)
    assert again == d
    plain = parse_directory(BASE, "d.toml", NOON).to_dict()
    assert "schedules" not in plain
    assert set(plain["settings"]) == {"staffed_within_ms"}
    assert digest_of(plain) == digest_of(Directory.from_dict(plain).to_dict())


def test_the_scenario_staffs_every_duty_desk_by_rotation() -> None:
    for party in PARTIES:
        d = parse_directory(directory_toml(party, 60.0), "d.toml", NOON)
        [role] = d.schedules
        assert len(d.on_duty(role, NOON)) == 1
        shifts = d.final_schedule(role, NOON, NOON + 14 * 86_400_000)
        assert all(s.holders for s in shifts), party


def test_the_duty_watch_alarms_only_gaps_not_accepted() -> None:
    """The watch's survey on a real (in-memory SQLite) store: the layer ends in 2 h; a
    6-hour horizon sees the gap, unless the directory accepts exactly that span."""
    from sqlalchemy import create_engine

    from hotline.calls.handover import survey
    from hotline.store.schema import metadata

    ending = SCHEDULE + 'end = "2026-03-29T14:00"\n\n[settings]\ngap_alarm_horizon = "6h"\n'
    accepted = ending.replace('zone = "Europe/Warsaw"', 'zone = "Europe/Warsaw"\naccept_gaps = '
                              '[{ from = "2026-03-29T14:00", to = "2026-04-30" }]')
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        early = NOON - 30 * 86_400_000  # applied long before: no gap within 14 days then
        plain = survey(conn, parse_directory(BASE + ending, "d.toml", early), NOON)
        assert [(g.from_ms - NOON) // 3600_000 for g in plain.gaps.values()] == [2]
        assert plain.first_seen == {"duty": ("duty-1",), "other": ()}
        fine = survey(conn, parse_directory(BASE + accepted, "d.toml", early), NOON)
        assert fine.gaps == {}


@pytest.mark.parametrize(("from_ms", "until_ms", "field"), [
    (-3_600_000, NOON, "from_ms"),        # 1969: a console window typed as 1969-12-31
    (NOON, NOON - 1, "until_ms"),
    (NOON, NOON, "until_ms"),
])
def test_an_override_window_refusal_names_the_end_that_is_wrong(
        from_ms: int, until_ms: int, field: str) -> None:
    from hotline.calls.duty import OverrideRequest, check_override
    from hotline.errors import HotlineError

    d = parse_directory(BASE + SCHEDULE, "d.toml", NOON)
    role = next(iter(d.schedules))
    operator = d.schedules[role].layers[0].participants[0]
    with pytest.raises(HotlineError) as refused:
        check_override(d, OverrideRequest(role, operator, from_ms, until_ms, False))
    assert refused.value.message.startswith(f"{field}: "), refused.value.message
