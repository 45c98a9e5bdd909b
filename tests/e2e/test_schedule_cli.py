"""``hotline schedule`` as an administrator uses it, on a node directory with the RU-GS
scenario applied (``ccp-do``: 12-hour watches among ccp-1..ccp-4 in Europe/Moscow, handed
over at 08:00 from 2024-01-01): real commands, checked against arithmetic done here, the
database, the log and a real iCalendar parser. Bad input exits 2, names the field and
changes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime

import icalendar
import pytest

from tests.calls import apply_scenario, apply_toml
from tests.e2e.test_cli import as_json, hotline
from tests.nodes import NodeProcess, wait_until

Make = Callable[..., NodeProcess]


@pytest.fixture
def ru(make_sqlite_node: Make) -> NodeProcess:
    node = make_sqlite_node("RU-GS")
    apply_scenario(node)
    return node


def schedule(ru: NodeProcess, *args: str, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
    return hotline("schedule", *args, "--dir", str(ru.dir), check=check)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def state(ru: NodeProcess) -> tuple[int, int, int]:
    """Overrides, log entries and directory versions: what bad input must not change."""
    return (ru.query("SELECT COUNT(*) AS n FROM schedule_overrides")[0].n,
            ru.query("SELECT COUNT(*) AS n FROM log_entries")[0].n,
            ru.query("SELECT COUNT(*) AS n FROM directory_versions")[0].n)


def test_who_and_show_name_the_watch_in_local_time(ru: NodeProcess) -> None:
    # 2026-03-29 07:30 Moscow is in the watch that began 2026-03-28 20:00
    who = as_json(schedule(ru, "who", "ccp-do", "--at", "2026-03-29T07:30:00+03:00",
                           "--json"))
    began = ms("2026-03-28T20:00:00+03:00")
    turns = (began - ms("2024-01-01T08:00:00+03:00")) // (12 * 3600 * 1000)
    assert who["holders"] == [f"ccp-{turns % 4 + 1}"]
    assert who["at"] == "2026-03-29T07:30+03:00"
    assert who["zone"] == "Europe/Moscow"
    # the same instant given without an offset is read in the schedule's zone
    local = as_json(schedule(ru, "who", "ccp-do", "--at", "2026-03-29T07:30", "--json"))
    assert local["at_ms"] == who["at_ms"]
    shown = as_json(schedule(ru, "show", "ccp-do", "--from", "2026-03-28T20:00",
                             "--to", "2026-03-30T08:00", "--json"))
    assert [(s["from"], s["until"]) for s in shown["shifts"]] == [
        ("2026-03-28T20:00+03:00", "2026-03-29T08:00+03:00"),
        ("2026-03-29T08:00+03:00", "2026-03-29T20:00+03:00"),
        ("2026-03-29T20:00+03:00", "2026-03-30T08:00+03:00")]
    assert shown["shifts"][0]["holders"] == who["holders"]
    assert [layer["name"] for layer in shown["layers"]] == ["watch"]
    assert shown["layers"][0]["participants"] == ["ccp-1", "ccp-2", "ccp-3", "ccp-4"]
    table = schedule(ru, "show", "ccp-do", "--from", "2026-03-28T20:00", "--to",
                     "2026-03-29T08:00")
    assert "ccp-do in Europe/Moscow" in table.stdout


def test_an_override_wins_is_logged_survives_apply_and_can_leave_a_gap(ru: NodeProcess
                                                                      ) -> None:
    at = "2026-03-29T10:00:00+03:00"
    holder = as_json(schedule(ru, "who", "ccp-do", "--at", at, "--json"))["holders"][0]
    other = "ccp-1" if holder != "ccp-1" else "ccp-2"
    made = as_json(schedule(ru, "override", "ccp-do", "--operator", other, "--from",
                            "2026-03-29T09:00", "--to", "2026-03-29T11:00", "--json"))
    assert made["operator"] == other
    assert made["unavailable"] is False
    assert made["from_ms"] == ms("2026-03-29T09:00:00+03:00")
    assert as_json(schedule(ru, "who", "ccp-do", "--at", at, "--json"))["holders"] == [other]
    logged = ru.query("SELECT entry FROM log_entries WHERE kind = 'duty-override'")
    assert len(logged) == 1
    assert f'"operator":"{other}"' in logged[0].entry.replace(" ", "")
    # a new directory version keeps it
    from hotline.scenario import directory_toml
    apply_toml(ru, directory_toml("RU-GS").replace('staffed_within = "', 'staffed_within = "1',
                                                    1))
    assert as_json(schedule(ru, "who", "ccp-do", "--at", at, "--json"))["holders"] == [other]
    # the override's taker unavailable: the watch falls back to the layer's holder
    schedule(ru, "override", "ccp-do", "--operator", other, "--from", "2026-03-29T09:30",
             "--to", "2026-03-29T10:30", "--unavailable")
    assert as_json(schedule(ru, "who", "ccp-do", "--at", at, "--json"))["holders"] == [holder]
    # and that one unavailable too: nobody is left, a gap, shown as one
    schedule(ru, "override", "ccp-do", "--operator", holder, "--from", "2026-03-29T09:30",
             "--to", "2026-03-29T10:30", "--unavailable")
    gap = as_json(schedule(ru, "who", "ccp-do", "--at", at, "--json"))
    assert gap["holders"] == []
    assert gap["source"] == "gap"
    shown = as_json(schedule(ru, "show", "ccp-do", "--from", "2026-03-29T09:00", "--to",
                             "2026-03-29T11:00", "--json"))
    assert [(s["from"][11:16], s["until"][11:16], s["holders"], s["gap"])
            for s in shown["shifts"]] == [("09:00", "09:30", [other], False),
                                         ("09:30", "10:30", [], True),
                                         ("10:30", "11:00", [other], False)]
    assert len(shown["overrides"]) == 3


def test_export_is_icalendar_of_the_final_schedule(ru: NodeProcess) -> None:
    result = schedule(ru, "export", "ccp-do", "--operator", "ccp-2", "--from",
                      "2026-03-28T08:00", "--to", "2026-04-01T08:00")
    calendar = icalendar.Calendar.from_ical(result.stdout)
    events = [e for e in calendar.walk("VEVENT")]
    shown = as_json(schedule(ru, "show", "ccp-do", "--from", "2026-03-28T08:00", "--to",
                             "2026-04-01T08:00", "--json"))
    mine = [s for s in shown["shifts"] if s["holders"] == ["ccp-2"]]
    assert len(events) == len(mine) == 2
    for event, shift in zip(sorted(events, key=lambda e: e.decoded("DTSTART")), mine,
                            strict=True):
        assert int(event.decoded("DTSTART").timestamp() * 1000) == shift["from_ms"]
        assert int(event.decoded("DTEND").timestamp() * 1000) == shift["until_ms"]
        assert event.decoded("DTSTART").tzinfo is not None
        assert event.decoded("DTEND").astimezone(UTC) > event.decoded("DTSTART")


@pytest.mark.parametrize(("args", "field"), [
    (("who", "ccp-do", "--at", "yesterday"), "--at"),
    (("who", "nobody-role"), "role"),
    (("show", "ccp-do", "--from", "2026-03-29T08:00", "--to", "2026-03-29T07:00"), "--to"),
    (("show", "ccp-do", "--from", "2026-13-01"), "--from"),
    (("override", "ccp-do", "--operator", "ccp-9", "--from", "2026-03-29T08:00", "--to",
      "2026-03-29T09:00"), "--operator"),
    (("override", "ccp-do", "--operator", "dcd-1", "--from", "2026-03-29T08:00", "--to",
      "2026-03-29T09:00"), "role"),
    (("override", "ccp-do", "--operator", "ccp-1", "--from", "2026-03-29T09:00", "--to",
      "2026-03-29T08:00"), "--to"),
    (("override", "ccp-do", "--operator", "ccp-1", "--from", "soon", "--to",
      "2026-03-29T08:00"), "--from"),
    (("export", "ccp-do", "--operator", "dcd-1"), "--operator"),
])
def test_bad_input_names_the_field_exits_2_and_changes_nothing(
        ru: NodeProcess, args: tuple[str, ...], field: str) -> None:
    before = state(ru)
    result = schedule(ru, *args, check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{field}:" in result.stderr, result.stderr
    assert result.stdout == ""
    assert state(ru) == before


def test_import_prints_layers_the_directory_accepts(ru: NodeProcess) -> None:
    """An exported calendar read back: the TOML printed is a schedule the directory takes,
    naming the same watches; nothing in the node changed until it is applied."""
    import tomllib

    from hotline.scenario import directory_toml

    exported = schedule(ru, "export", "ccp-do", "--operator", "ccp-3", "--from",
                        "2026-03-28T08:00", "--to", "2026-03-31T08:00")
    path = ru.dir / "ccp-3.ics"
    path.write_text(exported.stdout, encoding="utf-8")
    before = state(ru)
    printed = schedule(ru, "import", "ccp-do", str(path)).stdout
    assert state(ru) == before
    layers = tomllib.loads(printed)["schedules"]["ccp-do"]["layers"]
    assert {p for layer in layers for p in layer["participants"]} == {"ccp-3"}
    def watches() -> list[tuple[int, int]]:
        shown = as_json(schedule(ru, "show", "ccp-do", "--from", "2026-03-28T08:00", "--to",
                                 "2026-03-31T08:00", "--json"))
        return [(s["from_ms"], s["until_ms"]) for s in shown["shifts"]
                if s["holders"] == ["ccp-3"]]
    exported_watches = watches()
    assert len(exported_watches) == 2
    # applied as the only layers of ccp-do's schedule (accepting the gaps between them),
    # they name ccp-3 for exactly the watches exported
    head, tail = directory_toml("RU-GS").split("[schedules.ccp-do]", 1)
    tail = tail[tail.index("[chains."):]
    apply_toml(ru, head + '[schedules.ccp-do]\nzone = "Europe/Moscow"\naccept_gaps = true\n\n'
               + printed + "\n" + tail)
    assert watches() == exported_watches


#: ``ccp-do`` with a second layer: a one-hour Saturday-noon watch counted hourly since
#: 1971, so a question about the year 2100 is more than a million hand-overs past its start
HOURLY = """
[[schedules.ccp-do.layers]]
name = "noon"
participants = ["ccp-3"]
rrule = "FREQ=HOURLY"
handover = "00:00"
start = 1971-01-01
restrictions = [{ days = ["sat"], from = "12:00", to = "13:00" }]
"""


def test_instants_too_far_to_compute_are_refused_not_crashed(ru: NodeProcess) -> None:
    """The year 9999 (past where a turn's end can be written) and the year 2100 (past a
    rule's million hand-overs): the CLI exits 2 naming the option, the API answers 400
    naming the field with one security-log line, nothing crashes, nothing changes."""
    from hotline.bounds import MAX_TIME_MS
    from hotline.scenario import directory_toml

    apply_toml(ru, directory_toml("RU-GS") + HOURLY)
    before = state(ru)
    for args, field in [
            (("who", "ccp-do", "--at", "9999-12-31T23:59"), "--at"),
            (("who", "ccp-do", "--at", "2100-01-01T00:00Z"), "--at"),
            (("show", "ccp-do", "--from", "9999-12-20", "--to", "9999-12-31T23:59"), "--to"),
            (("show", "ccp-do", "--from", "2100-01-01", "--to", "2100-01-02"), "--to"),
            (("export", "ccp-do", "--from", "2100-01-01", "--to", "2100-01-02"), "--to")]:
        result = schedule(ru, *args, check=False)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"{field}:" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    assert state(ru) == before
    ru.start()
    year_2100 = ms("2100-01-01T00:00:00+00:00")
    for path, field in [
            (f"/api/v1/schedules/ccp-do/who?at_ms={MAX_TIME_MS}", "at_ms"),
            (f"/api/v1/schedules/ccp-do/who?at_ms={year_2100}", "at_ms"),
            (f"/api/v1/schedules/ccp-do?from_ms={MAX_TIME_MS - 10 * 86_400_000}"
             f"&until_ms={MAX_TIME_MS}", "until_ms"),
            (f"/api/v1/schedules/ccp-do?from_ms={year_2100}", "until_ms"),
            ("/api/v1/schedules/ccp-do?from_ms=2000000&until_ms=1000000", "until_ms"),
            (f"/api/v1/schedules/ccp-do?from_ms=0&until_ms={year_2100}", "until_ms")]:
        seen = len(ru.log_lines("hotline.security:"))
        response = ru.api("GET", path)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["message"].startswith(f"{field}:"), response.text
        lines = wait_until(lambda seen=seen: ru.log_lines("hotline.security:")[seen:] or None,
                           10, what="the refusal's security-log line")
        assert len(lines) == 1, lines
    # and the present is answered as before
    assert ru.api("GET", "/api/v1/schedules/ccp-do/who").status_code == 200
    assert state(ru) == before


def test_an_api_override_with_its_end_before_its_start_names_until_ms(ru: NodeProcess
                                                                      ) -> None:
    ru.start()
    before = state(ru)
    seen = len(ru.log_lines("hotline.security:"))
    response = ru.api("POST", "/api/v1/roster", json={
        "operator": "ccp-2", "role": "ccp-do", "status": "on-duty",
        "from_ms": ms("2026-03-29T10:00:00+03:00"), "until_ms": ms("2026-03-29T09:00:00+03:00")})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith("until_ms: "), response.text
    lines = wait_until(lambda: ru.log_lines("hotline.security:")[seen:] or None, 10,
                       what="the refusal's security-log line")
    assert len(lines) == 1, lines
    assert state(ru) == before


def test_import_refuses_a_calendar_naming_someone_who_does_not_hold_the_role(
        ru: NodeProcess) -> None:
    """What import prints is meant to be applied: an event whose holder is no operator of
    the role (here dcd-1, of another desk, and a stranger) is refused, exit 2."""
    for who in ("dcd-1", "stranger"):
        path = ru.dir / f"{who}.ics"
        path.write_bytes(
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\n"
            b"UID:w1\r\nSUMMARY:" + who.encode() + b"\r\nDTSTART:20260329T050000Z\r\n"
            b"DTEND:20260329T170000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        before = state(ru)
        result = schedule(ru, "import", "ccp-do", str(path), check=False)
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert "FILE:" in result.stderr, result.stderr
        assert "event 1" in result.stderr, result.stderr
        assert who in result.stderr
        assert result.stdout == ""
        assert state(ru) == before


def test_an_override_at_the_end_of_time_is_stored_and_shown_not_crashed(ru: NodeProcess
                                                                        ) -> None:
    """The last hour of the year 9999 in UTC is already the year 10000 in Moscow: the
    override is kept and printed in UTC instead of crashing after it was stored."""
    made = as_json(schedule(ru, "override", "ccp-do", "--operator", "ccp-2", "--from",
                            "9999-12-31T23:00:00Z", "--to", "9999-12-31T23:30:00Z", "--json"))
    assert made["from_ms"] == ms("9999-12-31T23:00:00+00:00")
    assert made["from"] == "9999-12-31T23:00Z"
    text = schedule(ru, "override", "ccp-do", "--operator", "ccp-1", "--from",
                    "9999-12-31T23:30:00Z", "--to", "9999-12-31T23:59:00Z")
    assert "9999-12-31T23:30Z" in text.stdout
    assert ru.query("SELECT COUNT(*) AS n FROM schedule_overrides")[0].n == 2


def test_an_override_without_an_end_is_shown_as_open(ru: NodeProcess) -> None:
    """POST /api/v1/roster without until_ms (the documented default: no end) and then
    `schedule show`: the override is listed as open-ended, not a crash of every show."""
    ru.start()
    response = ru.api("POST", "/api/v1/roster", json={"operator": "ccp-2", "role": "ccp-do"})
    assert response.status_code == 200, response.text
    shown = as_json(schedule(ru, "show", "ccp-do", "--json"))
    assert [(o["operator"], o["until"]) for o in shown["overrides"]] == [("ccp-2", None)]
    assert {tuple(s["holders"]) for s in shown["shifts"]} == {("ccp-2",)}
    text = schedule(ru, "show", "ccp-do").stdout
    assert "ccp-2 on duty" in text
    assert "no end" in text


def test_import_refuses_a_calendar_of_more_events_than_a_schedule_takes_layers(
        ru: NodeProcess) -> None:
    """Each one-off event becomes a layer and a schedule takes at most 20: the export of
    eleven days of 12-hour watches (22 events) read back must be refused, exit 2, rather
    than printed as TOML that ``roles apply`` refuses; nothing changes."""
    exported = schedule(ru, "export", "ccp-do", "--from", "2026-03-28T08:00", "--to",
                        "2026-04-08T08:00")
    assert len(icalendar.Calendar.from_ical(exported.stdout).walk("VEVENT")) == 22
    path = ru.dir / "eleven-days.ics"
    path.write_text(exported.stdout, encoding="utf-8")
    before = state(ru)
    result = schedule(ru, "import", "ccp-do", str(path), check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "FILE:" in result.stderr, result.stderr
    assert "at most 20" in result.stderr, result.stderr
    assert result.stdout == ""
    assert state(ru) == before


def test_show_marks_an_override_the_directory_no_longer_lets_count(ru: NodeProcess
                                                                   ) -> None:
    """An override outlives directory changes; when the directory no longer gives its
    operator the role, the final schedule leaves it out, and ``show`` must say so instead
    of listing it as if it put them on duty."""
    from hotline.scenario import directory_toml

    made = as_json(schedule(ru, "override", "ccp-do", "--operator", "ccp-2", "--from",
                            "2026-03-29T09:00", "--to", "2026-03-29T11:00", "--json"))
    at = "2026-03-29T10:00"
    assert as_json(schedule(ru, "who", "ccp-do", "--at", at, "--json"))["holders"] == \
        ["ccp-2"]
    shown = as_json(schedule(ru, "show", "ccp-do", "--from", "2026-03-29T09:00", "--to",
                             "2026-03-29T11:00", "--json"))
    assert [o["ignored"] for o in shown["overrides"]] == [False]
    # ccp-2 moves to another desk: out of the rotation and the role
    toml = directory_toml("RU-GS")
    block = toml.index('[operators."ccp-2"]')
    toml = toml[:block] + toml[block:].replace('roles = ["ccp-do"]', 'roles = ["cgs"]', 1)
    apply_toml(ru, toml.replace('["ccp-1", "ccp-2", "ccp-3", "ccp-4"]',
                                '["ccp-1", "ccp-3", "ccp-4"]'))
    holders = as_json(schedule(ru, "who", "ccp-do", "--at", at, "--json"))["holders"]
    assert holders != ["ccp-2"]
    shown = as_json(schedule(ru, "show", "ccp-do", "--from", "2026-03-29T09:00", "--to",
                             "2026-03-29T11:00", "--json"))
    assert [(o["id"], o["ignored"]) for o in shown["overrides"]] == [(made["id"], True)]
    assert {s["source"] for s in shown["shifts"]} == {"layer:watch"}
    text = schedule(ru, "show", "ccp-do", "--from", "2026-03-29T09:00", "--to",
                    "2026-03-29T11:00").stdout
    assert "ignored: ccp-do is no longer theirs" in " ".join(text.split())
