"""Attribution queries across two real nodes (docs/queries.md): answered in time,
answered "will not answer", unanswered at the deadline (chain rung, fallback run), a
late answer refused by the callee, and an answer that reaches the asker after its own
deadline recorded as late — every state signed by its party and verified by the asker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.calls import ringing_roles, us_and_ru, wait_for_event
from tests.nodes import NodeProcess, wait_until
from tests.state import hotline

Make = Callable[[str], NodeProcess]
QUESTION = "Did forces under your command fire a missile towards Przewodow at 15:40?"


def ask(node: NodeProcess, deadline: str, about: str | None = None) -> str:
    response = node.api("POST", "/api/v1/queries",
                        json={"to": "cgs@RU-GS", "as": "nmcc-do", "question": QUESTION,
                              "deadline": deadline, "about": about})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "query"
    assert body["query"]["status"] == "pending"
    return str(body["id"])


def query_of(node: NodeProcess, query_id: str) -> dict[str, Any]:
    response = node.api("GET", f"/api/v1/queries/{query_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for_status(node: NodeProcess, query_id: str, status: str,
                    timeout: float = 30.0) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = query_of(node, query_id)
        return body if body["query"]["status"] == status else None
    return wait_until(reached, timeout,  # type: ignore[no-any-return]
                      what=f"query {query_id} on {node.party} to be {status}")


def answer(node: NodeProcess, query_id: str, kind: str, details: str | None) -> Any:
    return node.api("POST", f"/api/v1/queries/{query_id}/answer",
                    json={"as": "ccp-do", "operator": "ccp-1", "answer": kind,
                          "details": details})


def signed(body: dict[str, Any], signer: str, state: str) -> list[dict[str, Any]]:
    return [h for h in body["history"] if h["signed_by"] == signer and h["state"] == state]


def test_answered_in_time_unknown_with_details_cli_and_incident(make_node: Make) -> None:
    us, ru = us_and_ru(make_node)
    opened = us.api("POST", "/api/v1/incidents", json={"title": "Przewodow impact",
                                                       "parties": ["RU-GS"]})
    assert opened.status_code == 201, opened.text
    incident = opened.json()["id"]
    done = hotline(us, "query", "cgs@RU-GS", "--as", "nmcc-do", "--about", incident,
                   "--question", QUESTION, "--deadline", "30m", "--json")
    assert done.returncode == 0, done.stderr
    query_id = json.loads(done.stdout)["id"]
    wait_for_event(ru, query_id, "ringing", "ccp-do")
    # the callee's copy shows the question; a plain answer (no structured answer) is refused
    theirs = query_of(ru, query_id)
    assert theirs["query"]["question"] == QUESTION
    assert theirs["direction"] == "in"
    plain = ru.api("POST", f"/api/v1/calls/{query_id}/answer", json={"as": "ccp-do"})
    assert plain.status_code == 400
    assert plain.json()["error"] == "query-needs-answer"
    details = "No launch by our forces is known to this desk; checking with the districts."
    done = hotline(ru, "query", "answer", query_id, "--as", "ccp-do", "--operator", "ccp-1",
                   "--answer", "unknown", "--details", details)
    assert done.returncode == 0, done.stderr

    body = wait_for_status(us, query_id, "answered")
    q = body["query"]
    assert (q["answer"], q["details"], q["answered_by"]) == ("unknown", details, "ccp-1")
    assert q["answer_verified"] is True
    assert q["late"] is False
    assert q["incident"] == incident
    assert all(h["verified"] for h in body["history"])
    [stmt] = signed(body, "RU-GS", "answered")
    assert stmt["answer"] == "unknown"
    # the chain was rung like a call's, each step signed by RU-GS
    assert list(dict.fromkeys(ringing_roles(body))) == ["cgs", "cgs-1d", "ccp-do"]
    assert not signed(body, "US-JS", "fallback")
    # no conversation: a query is answered by its statement
    assert us.api("GET", f"/api/v1/conversations/{query_id}").status_code == 404
    # on the incident's timeline
    timeline = us.api("GET", f"/api/v1/incidents/{incident}").json()["entries"]
    assert any(e.get("link_kind") == "query" and e.get("link") == query_id
               for e in timeline)
    # listed: `hotline queries --json` and among the calls
    listed = json.loads(hotline(us, "queries", "--json").stdout)["queries"]
    assert [r["id"] for r in listed] == [query_id]
    table = hotline(us, "queries").stdout
    assert query_id in table
    assert "unknown (ccp-1, verified)" in table
    assert "QUERY:" in hotline(us, "calls").stdout
    calls = us.api("GET", "/api/v1/calls").json()["calls"]
    assert [c["kind"] for c in calls if c["id"] == query_id] == ["query"]


def test_will_not_answer_is_signed_and_distinct_from_unanswered(make_node: Make) -> None:
    us, ru = us_and_ru(make_node)
    # bad input is refused naming the field, and nothing is sent
    base = {"to": "cgs@RU-GS", "as": "nmcc-do", "question": QUESTION, "deadline": "30m"}
    for change, error in (({"about": "0" * 32}, "no-incident"),
                          ({"deadline": "soon"}, "bad-deadline"),
                          ({"question": "   "}, "bad-question"),
                          ({"to": "cgs-1d@RU-GS", "as": "cjcs"}, "call-forbidden")):
        refused = us.api("POST", "/api/v1/queries", json={**base, **change})
        assert refused.status_code in (400, 403, 404), refused.text
        assert refused.json()["error"] == error
    assert us.api("GET", "/api/v1/queries").json()["queries"] == []
    assert us.api("GET", "/api/v1/calls").json()["calls"] == []
    query_id = ask(us, "30m")
    wait_for_event(ru, query_id, "ringing", "cgs")
    response = answer(ru, query_id, "will-not-answer", "Not a matter for this channel.")
    assert response.status_code == 403  # ccp-do has not been rung yet
    wait_for_event(ru, query_id, "ringing", "ccp-do")
    assert answer(ru, query_id, "will-not-answer", None).status_code == 200

    body = wait_for_status(us, query_id, "will-not-answer")
    assert body["state"] == "answered"
    assert body["query"]["answer"] == "will-not-answer"
    [stmt] = signed(body, "RU-GS", "answered")
    assert stmt["verified"]
    assert stmt["answer"] == "will-not-answer"
    assert not signed(body, "RU-GS", "unanswered")
    assert not signed(body, "US-JS", "unanswered")
    # ended: a second answer is refused, nothing changes
    again = answer(ru, query_id, "yes", None)
    assert again.status_code == 409
    assert again.json()["error"] == "call-ended"
    assert query_of(us, query_id)["query"]["answer"] == "will-not-answer"


def test_unanswered_at_deadline_after_the_chain_then_late_answer_refused(
        make_node: Make) -> None:
    us, ru = us_and_ru(make_node)
    query_id = ask(us, "4s")
    # the chain (cgs, cgs-1d, ccp-do: 1.5 s) runs out well before the deadline and
    # repeats its last step; the query stays open until the deadline
    body = wait_for_status(us, query_id, "unanswered", timeout=30)
    assert list(dict.fromkeys(ringing_roles(body))) == ["cgs", "cgs-1d", "ccp-do"]
    [ours] = signed(body, "US-JS", "unanswered")
    assert ours["verified"]
    # the link's fallback ran: another call, our people alerted, PL-GS not linked
    fallbacks = [h["reason"] for h in signed(body, "US-JS", "fallback")]
    assert any(r.startswith("calling dcd@RU-GS instead") for r in fallbacks), fallbacks
    assert any("cjcs" in r for r in fallbacks), fallbacks
    # the callee's own signed "unanswered" reaches the asker, verified; the fallback ran once
    body = wait_until(lambda: (lambda b: b if signed(b, "RU-GS", "unanswered") else None)(
        query_of(us, query_id)), 30, what="RU-GS's unanswered statement")
    [theirs] = signed(body, "RU-GS", "unanswered")
    assert theirs["verified"]
    assert "deadline" in theirs["reason"]
    assert len([h for h in signed(body, "US-JS", "fallback")
                if h["reason"].startswith("calling")]) == 1
    # answered late: refused by the callee with a stable error; nothing changes
    late = answer(ru, query_id, "no", "Too late, but no.")
    assert late.status_code == 409
    assert late.json()["error"] == "query-deadline-passed"
    assert query_of(ru, query_id)["query"]["status"] == "unanswered"
    assert query_of(us, query_id)["query"]["answer"] is None


def test_answer_reaching_the_asker_after_its_deadline_is_recorded_late(
        make_node: Make) -> None:
    us, ru = us_and_ru(make_node)
    ru.stop()
    query_id = ask(us, "6s")
    # RU is down: nothing is delivered; at the asker's deadline it records unanswered
    body = wait_for_status(us, query_id, "unanswered", timeout=30)
    assert signed(body, "US-JS", "unanswered")
    ru.start()
    # delivered now: the callee's deadline counts from delivery, so it can still answer
    wait_for_event(ru, query_id, "ringing", "ccp-do")
    response = answer(ru, query_id, "no", "Our systems recorded no launch.")
    assert response.status_code == 200, response.text
    body = wait_for_status(us, query_id, "answered-late")
    q = body["query"]
    assert (q["answer"], q["late"], q["answer_verified"]) == ("no", True, True)
    assert body["state"] == "unanswered"  # what we recorded at our deadline stands
    assert all(h["verified"] for h in body["history"])
