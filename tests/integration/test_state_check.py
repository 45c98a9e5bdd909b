"""The state a node acts on, checked against its log at start-up and by ``log verify``,
and repaired from the log (``hotline repair --from-log``), on real nodes."""

from __future__ import annotations

from collections.abc import Callable

from tests.calls import place, us_and_ru, wait_for_state
from tests.nodes import NodeProcess, wait_until
from tests.state import edit, findings, hotline, serve_refused

Make = Callable[[str], NodeProcess]


def _row(found: list[dict[str, object]], table: str, row: str) -> dict[str, object]:
    matches = [f for f in found if f["table"] == table and f["row"] == row]
    assert matches, (table, row, found)
    return matches[0]


def test_every_edit_is_named_and_repaired_from_the_log(make_node: Make) -> None:
    us, ru = us_and_ru(make_node)
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "state check")
    wait_for_state(ru, call_id, "ringing")
    r = ru.api("POST", f"/api/v1/calls/{call_id}/answer", json={"as": "cgs",
                                                                "operator": "cgs-1"})
    assert r.status_code == 200, r.text
    wait_for_state(us, call_id, "answered")
    r = us.api("POST", f"/api/v1/conversations/{call_id}/messages",
               json={"text": "original text", "as": "nmcc-do", "operator": "nmcc-1"})
    assert r.status_code == 201, r.text
    message = r.json()["id"]
    us.send("RU-GS", ["one", "two"])
    ru.send("US-JS", ["three"])
    wait_until(lambda: us.peer_status("RU-GS")["queued"] == 0, what="US's outbox empty")
    wait_until(lambda: len(us.query("SELECT id FROM inbound WHERE type = 'message'")) == 1,
               what="RU's message at US")
    us.stop()
    ru.stop()
    assert findings(us) == []

    out_row = us.query("SELECT seq, lane FROM outbox WHERE type = 'message' ORDER BY seq")[0]
    in_row = us.query("SELECT seq, lane FROM inbound WHERE type = 'message'")[0]
    sent, received = out_row.seq, in_row.seq
    # per (peer, lane): a finding names a lane other than control
    sent_row = f"peer=RU-GS seq={sent}" + ("" if out_row.lane == "control"
                                           else f" lane={out_row.lane}")
    received_row = f"peer=RU-GS seq={received}" + ("" if in_row.lane == "control"
                                                   else f" lane={in_row.lane}")
    state_entry = us.query("SELECT idx FROM log_entries WHERE kind = 'call-state' "
                           "AND subject = :c ORDER BY idx", c=call_id)[0].idx
    any_entry = us.query("SELECT max(idx) AS i FROM log_entries")[0].i
    assert edit(us, "DELETE FROM outbox WHERE peer = 'RU-GS' AND seq = :s AND lane = :l",
                s=sent, l=out_row.lane) == 1
    assert edit(us, "DELETE FROM inbound WHERE peer = 'RU-GS' AND seq = :s AND lane = :l",
                s=received, l=in_row.lane) == 1
    assert edit(us, "UPDATE calls SET state = 'declined' WHERE id = :c", c=call_id) == 1
    assert edit(us, "UPDATE conversation_messages SET text = 'edited' WHERE id = :m",
                m=message) == 1
    assert edit(us, "UPDATE log_entries SET subject = 'elsewhere' WHERE idx = :i",
                i=state_entry) == 1
    assert edit(us, "UPDATE log_entries SET at = at - 86400000 WHERE idx = :i",
                i=any_entry) == 1

    found = findings(us)
    assert "acknowledged" in str(_row(found, "outbox", sent_row)["message"])
    assert "released" in str(_row(found, "inbound", received_row)["message"])
    call = _row(found, "calls", f"id={call_id}")
    assert "'declined'" in str(call["message"])
    assert "'answered'" in str(call["message"])
    assert _row(found, "conversation_messages", f"id={message}")["repairable"]
    subject = _row(found, "log_entries", f"idx={state_entry}")
    assert subject["repair"] == [{"table": "log_entries", "row": f"idx={state_entry}",
                                  "column": "subject", "from": "elsewhere", "to": call_id}]
    at = _row(found, "log_entries", f"idx={any_entry}")
    assert at["repair"][0]["column"] == "at"  # type: ignore[index]
    assert len(found) == 6, found

    said = serve_refused(us)
    assert "state-disagrees" in said
    for row in (f"seq={sent}", f"id={call_id}", f"id={message}", f"idx={state_entry}"):
        assert row in us.log_path.read_text() + said, row

    done = hotline(us, "repair", "--from-log", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert findings(us) == []
    assert us.query("SELECT state FROM calls WHERE id = :c", c=call_id)[0].state == "answered"
    assert us.query("SELECT text FROM conversation_messages WHERE id = :m",
                    m=message)[0].text == "original text"
    assert us.query("SELECT subject FROM log_entries WHERE idx = :i",
                    i=state_entry)[0].subject == call_id
    repairs = us.query("SELECT entry FROM log_entries WHERE kind = 'repair'")
    assert len(repairs) == 1
    assert "original text" not in repairs[0].entry
    us.start()  # serves again
    assert us.status()["party"] == "US-JS"


def test_an_unrepairable_row_is_left_and_said(make_sqlite_node: Make) -> None:
    us = make_sqlite_node("US-JS")
    assert findings(us) == []
    edit(us, "UPDATE log_entries SET subject = 'x' WHERE idx = 0")
    found = findings(us)
    assert found[0]["row"] == "idx=0"
    assert found[0]["repairable"]
    plan = hotline(us, "repair", "--from-log", "--json")
    assert plan.returncode == 0
    assert '"plan"' in plan.stdout
    assert len(findings(us)) == 1  # a plan changes nothing


def _alarm(node: NodeProcess, cause: str) -> dict[str, object] | None:
    alarms: list[dict[str, object]] = node.status()["alarms"]
    return next((a for a in alarms if a["cause"] == cause), None)


def test_a_lost_outbox_row_is_named_alarmed_on_both_sides_and_repaired(
        make_node: Make) -> None:
    """The line killed by one deleted outbox row: named at start-up, alarmed on both sides
    while running, and moving again after ``repair --from-log``."""
    us, ru = make_node("US-JS"), make_node("RU-GS")
    from tests.nodes import link
    link(us, ru)
    for node in (us, ru):
        node.configure("delivery", gap_alarm_seconds=2.0)
    us.start()
    sent = us.send("RU-GS", ["first", "second", "third"])
    us.stop()
    lost = min(int(m["seq"]) for m in sent)
    assert edit(us, "DELETE FROM outbox WHERE peer = 'RU-GS' AND seq = :s", s=lost) == 1
    found = findings(us)
    assert len(found) == 1
    assert found[0]["row"] == f"peer=RU-GS seq={lost}"
    assert "never acknowledged" in str(found[0]["message"])
    assert "state-disagrees" in serve_refused(us)

    # served anyway: the line stalls, and both sides say so within the configured time
    ru.start()
    us.start("--accept-broken-log")
    wait_until(lambda: us.peer_status("RU-GS")["queued"] == 0, what="US's rows delivered")
    assert [m["text"] for m in ru.inbox()] == []  # held back behind the missing seq
    theirs = wait_until(lambda: _alarm(ru, "sequence-gap:US-JS"), 15, what="RU's gap alarm")
    assert f"seq {lost} from US-JS" in str(theirs["message"])
    assert ru.peer_status("US-JS")["waiting_for_seq"] == lost
    ours = wait_until(lambda: _alarm(us, "peer-gap:RU-GS"), 15, what="US's gap alarm")
    assert f"waits on our seq {lost}" in str(ours["message"])
    assert us.peer_status("RU-GS")["peer_waiting_for_seq"] == lost

    # and on RU, one of the envelopes held back behind the gap is lost too
    us.stop()
    ru.stop()
    held = lost + 1
    assert edit(ru, "DELETE FROM inbound WHERE peer = 'US-JS' AND seq = :s", s=held) == 1
    found = findings(ru)
    assert [f["row"] for f in found] == [f"peer=US-JS seq={held}"]
    assert "not yet released" in str(found[0]["message"])
    for node in (ru, us):
        done = hotline(node, "repair", "--from-log", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert findings(node) == []
    ru.start()
    us.start()
    inbox = wait_until(lambda: (m := ru.inbox()) and len(m) == 3 and m, 30,
                       what="RU to release all three")
    assert [m["seq"] for m in inbox] == [lost, held, held + 1]
    assert [m["type"] for m in inbox] == ["seq.lost", "seq.lost", "message"]
    assert inbox[2]["text"] == "third"
    wait_until(lambda: _alarm(ru, "sequence-gap:US-JS") is None, 15, what="RU's alarm cleared")
    wait_until(lambda: _alarm(us, "peer-gap:RU-GS") is None, 15, what="US's alarm cleared")
    assert ru.peer_status("US-JS")["waiting_for_seq"] is None
    for node in (ru, us):  # after the repair and the traffic it let through, still agreed
        node.stop()
        assert findings(node) == []
