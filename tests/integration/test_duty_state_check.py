"""Duty overrides checked against the log at start-up: an edit of who holds a role is
named, refused and repaired from the log (docs/log.md, the start-up state check)."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.test_duty import after, linked, who_cli
from tests.nodes import NodeProcess
from tests.state import edit, findings, hotline, serve_refused

Make = Callable[..., NodeProcess]


def test_an_edited_deleted_or_added_override_is_named_and_repaired(
        make_sqlite_node: Make) -> None:
    us, ru = linked(make_sqlite_node)
    holder = who_cli(ru)["holders"][0]
    relief = after(holder)
    made = ru.api("POST", "/api/v1/roster", json={"operator": relief, "role": "ccp-do"})
    assert made.status_code == 200, made.text
    second = ru.api("POST", "/api/v1/roster", json={"operator": holder, "role": "ccp-do"})
    assert second.status_code == 200, second.text
    ids = [r.id for r in ru.query("SELECT id FROM schedule_overrides ORDER BY id")]
    assert len(ids) == 2
    on_duty = who_cli(ru)["holders"]
    us.stop()
    ru.stop()
    assert findings(ru) == []
    # the attacker puts an officer of its choice on watch, and hides the last change;
    # one the override did not name (who is on watch, and so ``relief``, depends on the
    # hour: an edit to the same name changes nothing to find)
    chosen = after(relief)
    assert chosen not in (relief, holder)
    assert edit(ru, "UPDATE schedule_overrides SET operator = :o WHERE id = :i",
                o=chosen, i=ids[0]) == 1
    assert edit(ru, "INSERT INTO schedule_overrides (role, operator, from_ms, until_ms, "
                    "unavailable, created_by, created_at) VALUES ('ccp-do', 'ccp-3', 0, "
                    "99999999999999, 0, 'admin', 0)") == 1
    assert edit(ru, "DELETE FROM schedule_overrides WHERE id = :i", i=ids[1]) == 1
    found = findings(ru)
    rows = {f["row"]: f for f in found if f["table"] == "schedule_overrides"}
    assert set(rows) == {f"id={ids[0]}", f"id={ids[1]}", f"id={ids[1] + 1}"}, found
    assert chosen in str(rows[f"id={ids[0]}"]["message"])
    assert rows[f"id={ids[0]}"]["repairable"]
    assert rows[f"id={ids[1]}"]["repairable"]
    assert not rows[f"id={ids[1] + 1}"]["repairable"]
    assert "state-disagrees" in serve_refused(ru)
    assert edit(ru, "DELETE FROM schedule_overrides WHERE id = :i", i=ids[1] + 1) == 1
    done = hotline(ru, "repair", "--from-log", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert findings(ru) == []
    assert [(r.id, r.operator) for r in ru.query(
        "SELECT id, operator FROM schedule_overrides ORDER BY id")] == \
        [(ids[0], relief), (ids[1], holder)]
    again = hotline(ru, "repair", "--from-log", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(ru.query("SELECT entry FROM log_entries WHERE kind = 'repair'")) == 1
    ru.start()
    assert who_cli(ru)["holders"] == on_duty
