"""The CLI in an 80-column terminal, as a new operator meets it: real `hotline`
processes against a linked US-JS and RU-GS. Tables keep ids, states and times whole;
the callee sees the reason and who was rung; the inbox shows what people sent; a
mistyped desk is named as such; help reads like help."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.calls import us_and_ru, wait_for_event, wait_for_state
from tests.e2e.test_cli import as_json, hotline
from tests.nodes import NodeProcess, nodes_on, wait_until

NARROW = {"COLUMNS": "80", "LINES": "50", "TERM": "dumb"}


def cli(*args: str, check: bool = True) -> Any:
    return hotline(*args, env=NARROW, check=check)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    with nodes_on("sqlite", tmp_path_factory.mktemp("terminal")) as make:
        yield us_and_ru(make)


def _answered_call(us: NodeProcess, ru: NodeProcess, reason: str) -> str:
    placed = cli("call", "cgs@RU-GS", "--dir", str(us.dir), "--as", "nmcc-do",
                 "--reason", reason)
    call_id: str = placed.stdout.splitlines()[0].strip()
    wait_for_event(ru, call_id, "ringing", "ccp-do")
    cli("answer", call_id, "--dir", str(ru.dir), "--as", "ccp-do", "--operator", "ccp-1")
    wait_for_state(us, call_id, "answered")
    return call_id


def _fits(text: str) -> None:
    """Nothing cut with an ellipsis."""
    assert "…" not in text, text


def test_tables_keep_ids_states_and_times_whole_at_80_columns(
        pair: tuple[NodeProcess, NodeProcess]) -> None:
    us, ru = pair
    call_id = _answered_call(us, ru, "Przewodow: a missile fell in Poland")
    declined = cli("call", "cgs@RU-GS", "--dir", str(us.dir), "--as", "nmcc-do").stdout
    declined_id = declined.splitlines()[0].strip()
    wait_for_event(ru, declined_id, "ringing", "ccp-do")
    cli("decline", declined_id, "--dir", str(ru.dir), "--as", "ccp-do", "--reason", "busy")
    wait_for_state(us, declined_id, "declined")

    calls = cli("calls", "--dir", str(us.dir)).stdout
    _fits(calls)
    assert call_id in calls
    assert declined_id in calls
    for state in ("delivered", "declined", "answered", "ringing"):
        assert re.search(rf"\b{state}\b", calls), state
    history = as_json(cli("calls", "--dir", str(us.dir), "--json"))["calls"]
    for entry in history[0]["history"]:  # every time whole, to the second
        assert re.search(r"\b\d\d:\d\d:\d\d\b", calls)
        assert entry["state"] in calls

    conversations = cli("conversation", "list", "--dir", str(us.dir)).stdout
    _fits(conversations)
    assert call_id in conversations  # the id `conversation show` needs, whole
    shown = cli("conversation", "show", call_id, "--dir", str(us.dir))
    assert shown.returncode == 0

    ru.stop()
    try:
        cli("send", "RU-GS", "are you there?", "--dir", str(us.dir))

        def unreachable() -> str | None:
            text: str = cli("status", "--dir", str(us.dir)).stdout
            return text if "unreachable" in text else None
        status = wait_until(unreachable, 60, what="RU-GS unreachable in the status table")
        _fits(status)
        assert re.search(r"RU-GS\s*│\s*unreachable", status), status
    finally:
        ru.start()
    wait_until(lambda: as_json(cli("status", "--dir", str(us.dir), "--json"))["peers"][0][
        "queued"] == 0, 60, what="the queue to drain")
    for command in (["desks"], ["inbox", "--all"], ["link", "list"], ["alarms"]):
        _fits(cli(*command, "--dir", str(us.dir)).stdout)


def _ringing_line(call: dict[str, Any]) -> dict[str, Any]:
    return next(h for h in call["history"] if h["state"] == "ringing")


def test_the_callee_sees_the_reason_who_was_rung_and_the_caller_first(
        pair: tuple[NodeProcess, NodeProcess]) -> None:
    us, ru = pair
    placed = cli("call", "cgs@RU-GS", "--dir", str(us.dir), "--as", "nmcc-do",
                 "--reason", "Unknown missile over Lublin")
    call_id = placed.stdout.splitlines()[0].strip()
    call = wait_for_event(ru, call_id, "ringing", "ccp-do")
    view = cli("calls", "--dir", str(ru.dir)).stdout
    block = view[view.index(call_id):]
    assert "nmcc-do@US-JS → cgs@RU-GS" in block  # the caller first, on the callee's node
    assert "←" not in view
    assert "reason: Unknown missile over Lublin" in block
    ring = _ringing_line(call)
    rung = ", ".join(ring["who"]) if ring["who"] else "no one on duty"
    # title, role id and who was rung (the table may wrap the cell over lines)
    flat = re.sub(r"[\s│]+", " ", block)
    assert "(ccp-do)" in flat, block
    assert rung in flat, block
    title = as_json(cli("roles", "show", "--dir", str(ru.dir)))["directory"]["roles"][
        "ccp-do"]["title"]
    assert title["en"].split()[0] in flat
    # the caller's view names the same call the same way round, and its JSON keeps shape
    mine = cli("calls", "--dir", str(us.dir)).stdout
    assert "nmcc-do@US-JS → cgs@RU-GS" in mine[mine.index(call_id):]
    item = next(c for c in as_json(cli("calls", "--dir", str(ru.dir), "--json"))["calls"]
                if c["id"] == call_id)
    assert item["state"] == "ringing"
    for entry in item["history"]:
        assert set(entry) >= {"state", "role", "signed_by", "verified"}
    cli("cancel", call_id, "--dir", str(us.dir))


def test_the_inbox_shows_what_people_sent_and_the_rest_behind_all(
        pair: tuple[NodeProcess, NodeProcess]) -> None:
    us, ru = pair
    cli("send", "US-JS", "NMCC, this is the Kremlin line", "--dir", str(ru.dir))
    wait_until(lambda: any(m["type"] == "message" for m in as_json(
        cli("inbox", "--dir", str(us.dir), "--json"))["messages"]), 30,
        what="the message at US")
    people = as_json(cli("inbox", "--dir", str(us.dir), "--json"))["messages"]
    assert people
    assert {m["type"] for m in people} <= {"message", "notice", "seq.lost"}
    everything = as_json(cli("inbox", "--all", "--dir", str(us.dir), "--json"))["messages"]
    assert {"desks", "call.state"} <= {m["type"] for m in everything}
    table = cli("inbox", "--dir", str(us.dir)).stdout
    assert "NMCC, this is the Kremlin line" in table
    for protocol in ("call.state", "desks", '"role"', "{"):
        assert protocol not in table, table
    assert "call.state" in cli("inbox", "--all", "--dir", str(us.dir)).stdout
    api = us.api("GET", "/api/v1/inbox", params={"kind": "people"}).json()["messages"]
    assert [m["id"] for m in api] == [m["id"] for m in people]


def test_incident_and_notification_lists_are_tables_keeping_ids_whole(
        pair: tuple[NodeProcess, NodeProcess]) -> None:
    """At 80 columns a long incident title wraps in its column: the id `incident show`
    needs and the state stay whole on the row's first line (they were pushed apart by
    the title on one free line); the notification list has the same columns policy."""
    us, ru = pair
    title = ("Przewodow impact: explosion at a grain dryer near the border, two dead, "
             "origin not yet known")
    opened = as_json(cli("incident", "open", "--title", title, "--party", "RU-GS",
                         "--dir", str(us.dir), "--json"))
    listed = cli("incident", "list", "--dir", str(us.dir)).stdout
    _fits(listed)
    row = next(line for line in listed.splitlines() if opened["id"] in line)
    assert re.search(r"\bmember\b", row), listed
    assert "Przewodow" in row, listed
    assert "state" in listed.splitlines()[1], listed  # a header names the columns
    first = as_json(cli("incident", "add", opened["id"], "--kind", "assessment", "--text",
                        "Explosion at a grain dryer in Przewodow, two dead; debris "
                        "consistent with an air defence missile", "--confidence",
                        "moderate", "--dir", str(us.dir), "--json"))
    cli("incident", "add", opened["id"], "--kind", "fact", "--text", "S-300 debris",
        "--corrects", first["id"], "--dir", str(us.dir))
    shown = cli("incident", "show", opened["id"], "--dir", str(us.dir)).stdout
    _fits(shown)
    entries = as_json(cli("incident", "show", opened["id"], "--dir", str(us.dir),
                          "--json"))["entries"]
    for entry in entries:  # each id whole on a line (what --corrects and --ref take)
        assert re.search(rf"^\s*id {entry['id']}$", shown, re.M), shown
    # a time is never split across lines: every date is followed by its time
    assert len(re.findall(r"\d{4}-\d\d-\d\d", shown)) == len(
        re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", shown)), shown
    assert "[]" not in shown, shown
    assert f"CORRECTED by {entries[-1]['id']}" in shown, shown

    cli("notify", "--template", "link-test", "--to", "RU-GS", "--as", "nmcc-do",
        "--field", "sent_at=2026-11-30T06:00+00:00[UTC]", "--field", "sequence=1",
        "--dir", str(us.dir))
    sent = as_json(cli("notification", "list", "--dir", str(us.dir), "--json"))
    notice_id = sent["notifications"][0]["id"]
    table = cli("notification", "list", "--dir", str(us.dir)).stdout
    _fits(table)
    row = next(line for line in table.splitlines() if notice_id in line)
    assert "US-JS" in row, table
    # the recipient's inbox shows it among people's messages, with the command to read it
    wait_until(lambda: notice_id in cli("inbox", "--dir", str(ru.dir)).stdout, 30,
               what="the notification in RU's inbox")
    inbox = cli("inbox", "--dir", str(ru.dir)).stdout
    _fits(inbox)
    assert f"hotline notification show {notice_id}" in re.sub(r"[\s│]+", " ", inbox), inbox
    assert '"fields"' not in inbox, inbox
    wide = hotline("notification", "list", "--dir", str(us.dir),
                   env={**NARROW, "COLUMNS": "140"}).stdout
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", wide), wide  # sent, when it fits


def test_a_mistyped_desk_is_named_and_the_peers_desks_listed(
        pair: tuple[NodeProcess, NodeProcess]) -> None:
    us, _ = pair
    result = cli("call", "cgx@RU-GS", "--dir", str(us.dir), "--as", "nmcc-do", check=False)
    assert result.returncode == 1
    assert "error[no-desk]: RU-GS offers no desk cgx" in result.stderr
    assert "may_call" not in result.stderr
    offered = sorted(d["role"] for d in as_json(cli("desks", "--dir", str(us.dir), "--json"))[
        "desks"] if d["party"] == "RU-GS")
    assert f"hint: RU-GS offers: {', '.join(offered)}" in result.stderr
    # a desk RU-GS offers but our policy does not let vcjcs call keeps its answer
    refused = cli("call", "cgs@RU-GS", "--dir", str(us.dir), "--as", "vcjcs", check=False)
    assert "error[call-forbidden]" in refused.stderr
    assert "may_call" in refused.stderr


def test_refusals_name_the_field_in_the_users_terms(
        pair: tuple[NodeProcess, NodeProcess]) -> None:
    us, _ = pair
    result = cli("answer", "not-a-call", "--dir", str(us.dir), "--as", "nmcc-do", check=False)
    assert result.returncode == 1
    assert "error[invalid-request]: CALL_ID: 'not-a-call' is not a call id" in \
        result.stderr
    assert "pattern" not in result.stderr
    assert "String should" not in result.stderr
    result = cli("conversation", "receipt", "0" * 32, "seen", "--dir", str(us.dir),
                 "--as", "nmcc-do", check=False)
    assert "KIND: 'seen' is not read or acknowledged" in result.stderr
    result = cli("answer", "0" * 32, "--dir", str(us.dir), "--as", "NMCC", check=False)
    assert "error[invalid-request]: --as: 'NMCC' is not a role id" in result.stderr


def test_refusals_name_the_parameter_as_the_command_spells_it(
        pair: tuple[NodeProcess, NodeProcess]) -> None:
    """One API field is an argument of one command and an option of another: the
    refusal names what the user typed (INCIDENT, not INCIDENT_ID; RECEIPT, not KIND;
    --text for `incident add`), and says what the field takes."""
    us, _ = pair
    result = cli("incident", "show", "zz", "--dir", str(us.dir), check=False)
    assert "error[invalid-request]: INCIDENT: 'zz' is not an incident id" in result.stderr
    result = cli("notification", "receipt", "0" * 32, "seen", "--as", "nmcc-do",
                 "--dir", str(us.dir), check=False)
    assert "error[bad-option]: RECEIPT: 'seen' is not read or acknowledged" in \
        result.stderr
    result = cli("incident", "add", "0" * 32, "--kind", "rumour", "--text", "x",
                 "--dir", str(us.dir), check=False)
    assert "error[invalid-request]: --kind: 'rumour' is not fact, claim, assessment or " \
        "notification" in result.stderr
    result = cli("incident", "add", "0" * 32, "--kind", "fact", "--text", "",
                 "--dir", str(us.dir), check=False)
    assert "error[invalid-request]: --text: must not be empty" in result.stderr


def test_init_refuses_a_bad_party_in_the_users_terms(tmp_path: Any) -> None:
    result = hotline("init", "--party", "us js", "--dir", str(tmp_path / "n"), "--listen",
                     "127.0.0.1:7900", env=NARROW, check=False)
    assert result.returncode == 2
    assert "error[bad-option]: --party: party id must be" in result.stderr
    assert "Value error" not in result.stderr


@pytest.mark.parametrize("command", [["demo"], ["answer"], ["inbox"], ["calls"],
                                     ["link", "accept"], ["conversation", "say"]])
def test_help_shows_flags_without_a_value_and_arguments_in_capitals(
        command: list[str]) -> None:
    text = hotline(*command, "--help", env=NARROW).stdout
    assert "<bool>" not in text, text
    assert "{" not in text, text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert usage.split("[OPTIONS]")[1].strip() == usage.split("[OPTIONS]")[1].strip().upper()
    assert re.search(r"--help\s+Show this", text), text
