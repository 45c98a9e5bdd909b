"""``hotline link remove`` from the command line: the report before, the question, the
outcome, an unknown party as a usage error, and ``roles apply``'s warning about a policy
for a removed link."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.calls import apply_scenario, place, wait_for_desks, wait_for_state
from tests.e2e.test_cli import as_json, hotline
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]


def test_link_remove_reports_asks_and_removes(make_sqlite_node: Make) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    apply_scenario(us)
    apply_scenario(ru)
    us.start()
    ru.start()
    wait_for_desks(us, "RU-GS")
    call_id = place(us, "cgs@RU-GS", "nmcc-do")
    wait_for_state(ru, call_id, "ringing")
    removals = "SELECT COUNT(*) AS n FROM log_entries WHERE kind = 'link-removed'"

    # only the administrator's token removes a link (or asks what it would end)
    issued = as_json(hotline("token", "issue", "--operator", "nmcc-1", "--dir",
                             str(us.dir), "--json"))
    for method, path in (("GET", "removal"), ("POST", "remove")):
        r = httpx.request(method, f"{us.url}/api/v1/links/RU-GS/{path}", timeout=30,
                          headers={"authorization": f"Bearer {issued['token']}"},
                          json={} if method == "POST" else None)
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "admin-only"
    assert len(us.log_lines("refused operator nmcc-1")) == 2

    # an unknown party: a usage error (exit 2) that changes nothing
    unknown = hotline("link", "remove", "XX-YY", "--dir", str(us.dir), "--yes", check=False)
    assert unknown.returncode == 2, unknown.stderr
    assert "no-link" in unknown.stderr
    # answering no: the report is shown, nothing is removed
    declined = hotline("link", "remove", "RU-GS", "--dir", str(us.dir), stdin="n\n",
                       check=False)
    assert declined.returncode == 1
    assert "1 open call(s) with RU-GS will end cancelled" in declined.stderr
    assert "[links.RU-GS]" in declined.stderr
    assert us.query(removals)[0].n == 0  # the ringing call keeps the log growing
    assert us.peer_status("RU-GS")["state"] != "removed"

    done = as_json(hotline("link", "remove", "RU-GS", "--dir", str(us.dir), "--yes",
                           "--json"))
    assert done["peer_told"] is True
    assert done["ended_calls"] == [call_id]
    assert done["policy_left"] is True
    table = hotline("status", "--dir", str(us.dir), env={"COLUMNS": "250"}).stdout
    assert "removed" in table
    assert "link removed at" in table
    peers = as_json(hotline("status", "--dir", str(us.dir), "--json"))["peers"]
    assert [(p["party"], p["state"]) for p in peers] == [("RU-GS", "removed")]
    wait_for_state(ru, call_id, "cancelled")
    assert "link-removed" in hotline("alarms", "--dir", str(ru.dir)).stdout
    again = hotline("link", "remove", "RU-GS", "--dir", str(us.dir), "--yes", check=False)
    assert again.returncode == 2
    assert "no-link" in again.stderr

    # the directory still names RU-GS: applying it again is accepted, with a warning
    applied = hotline("roles", "apply", str(us.dir / "directory.toml"), "--dir",
                      str(us.dir), "--json")
    assert "links.RU-GS: is a policy for a removed link" in applied.stderr
    [warning] = as_json(applied)["warnings"]
    assert warning.startswith("directory.toml:")
    assert warning.endswith("links.RU-GS: is a policy for a removed link: kept, it applies "
                            "again only if the link is accepted again")

    # accepted again with the CLI, messages flow again
    offer = hotline("link", "offer", "--dir", str(ru.dir)).stdout
    hotline("link", "accept", "-", "--dir", str(us.dir), "--yes", stdin=offer)
    offer = hotline("link", "offer", "--dir", str(us.dir)).stdout
    hotline("link", "accept", "-", "--dir", str(ru.dir), "--yes", stdin=offer)
    wait_until(lambda: us.peer_status("RU-GS")["state"] != "removed", 30, what="re-link")
    hotline("send", "RU-GS", "hello again", "--dir", str(us.dir))
    wait_until(lambda: any(m["text"] == "hello again" for m in ru.inbox()), 30,
               what="the message after re-linking")
