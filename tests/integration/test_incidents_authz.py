"""Incidents against who asks: an operator links to an incident only a call or a
conversation their roles have a part in (docs/security.md)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from hotline.authz.tokens import issue_token
from tests.calls import apply_scenario, place
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]


def security_lines(node: NodeProcess) -> list[str]:
    return node.log_lines("hotline.security: refused")


def test_an_operator_links_only_a_call_their_roles_have_a_part_in(
        make_sqlite_node: Make) -> None:
    """cjcs-1 (role cjcs) may not see the NMCC's call to RU-GS: linking it is 404
    ``no-call`` exactly as for a call that does not exist, with one security-log line,
    and nothing goes on the timeline; an NMCC officer links it."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    for node in (us, ru):
        apply_scenario(node)
        node.start()
    opened = us.api("POST", "/api/v1/incidents", json={"title": "Przewodów impact"})
    assert opened.status_code == 201, opened.text
    iid = opened.json()["id"]
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "Przewodów")
    tokens = {op: issue_token(us.dir, op)[1] for op in ("cjcs-1", "nmcc-1")}

    def link_call(op: str, call: str) -> httpx.Response:
        return httpx.post(f"{us.url}/api/v1/incidents/{iid}/links", json={"call": call},
                          headers={"authorization": f"Bearer {tokens[op]}"}, timeout=30)

    missing = link_call("cjcs-1", "f" * 32)
    assert missing.status_code == 404, missing.text
    before = len(security_lines(us))
    hidden = link_call("cjcs-1", call_id)
    assert hidden.status_code == 404, hidden.text
    assert hidden.json()["error"] == missing.json()["error"] == "no-call"
    assert hidden.json()["message"].replace(call_id, "X") == \
        missing.json()["message"].replace("f" * 32, "X")
    lines = wait_until(lambda: security_lines(us)[before:] or None, 10,
                       what="the refusal's security-log line")
    assert len(lines) == 1, lines
    assert "cjcs-1" in lines[0], lines
    entries = us.api("GET", f"/api/v1/incidents/{iid}").json()["entries"]
    assert [e["type"] for e in entries] == ["opened"]

    allowed = link_call("nmcc-1", call_id)
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["link"] == call_id
