"""The demo's incident: "Przewodów impact", opened by PL-GS with US-JS and UA-GS.

Driven through each party's operator API, as its operators would: PL-GS opens the
incident and invites US-JS and UA-GS, whose operators accept; PL-GS sends its incident
notification on the incident (``hotline notify … --incident``); the US call to RU-GS is
linked to it; PL-GS's assessment, then the US assessment and UA's statement, are added
side by side. :func:`timeline_everywhere` waits until every member holds the same signed
timeline (``--check`` fails otherwise), and :func:`outcome_rows` gives the demo's outcome
table its incident rows. :func:`attribution_query` asks RU-GS's duty officer about the
incident, who answers "unknown" with details before the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape

from hotline.cli.client import OperatorClient
from hotline.cli.demo_outcome import Outcome
from hotline.cli.tables import Col, show
from hotline.errors import HotlineError
from hotline.scenario import (
    INCIDENT_ASSESSMENTS,
    INCIDENT_MEMBERS,
    INCIDENT_NOTICE,
    INCIDENT_NOTICE_LANG,
    INCIDENT_TITLE,
)

#: party key of the demo -> party id
PARTY = {"us": "US-JS", "ru": "RU-GS", "ua": "UA-GS", "pl": "PL-GS"}
KEY = {party: key for key, party in PARTY.items()}
WAIT_S = 30.0


def _poll(what: str, probe: Any, timeout: float = WAIT_S) -> Any:
    """``probe()`` until it gives something other than None; ``demo-failed`` naming
    ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got is not None:
            return got
        time.sleep(0.1)
    raise HotlineError("demo-failed", f"{what} did not happen within {timeout:.0f} s")


def _incident(client: OperatorClient, incident_id: str, lang: str = "en"
              ) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = client.request("GET", f"/api/v1/incidents/{incident_id}",
                                              params={"lang": lang})
    except HotlineError as exc:
        if exc.error_id == "no-incident":
            return None  # the invitation is still on its way
        raise
    return body


def open_incident(c: Mapping[str, OperatorClient], console: Console) -> str:
    """PL-GS opens the incident and invites the members; each invited party's operator
    accepts once the invitation arrived. Returns the incident's id once every invited
    party holds the history (is a member)."""
    opened = c["pl"].request("POST", "/api/v1/incidents", json={
        "title": INCIDENT_TITLE, "parties": list(INCIDENT_MEMBERS)})
    incident_id = str(opened["id"])
    for party in INCIDENT_MEMBERS:
        client = c[KEY[party]]
        _poll(f"the invitation of {party}", lambda cl=client: _incident(cl, incident_id))
        client.request("POST", f"/api/v1/incidents/{incident_id}/accept")
    for party in INCIDENT_MEMBERS:
        client = c[KEY[party]]
        _poll(f"{party} joining the incident",
              lambda cl=client: (_incident(cl, incident_id) or {}).get("state") == "member"
              or None)
    console.print(f"    incident [bold]{INCIDENT_TITLE}[/] {incident_id} opened by PL-GS; "
                  f"{' and '.join(INCIDENT_MEMBERS)} accepted.")
    return incident_id


def notify(c: Mapping[str, OperatorClient], incident_id: str, console: Console
           ) -> dict[str, Any]:
    """PL-GS's incident notification, sent on the incident (to its members, and on its
    timeline). Returns the notification as the API answered."""
    notice: dict[str, Any] = c["pl"].request("POST", "/api/v1/notifications", json={
        "template": "incident-notification", "incident": incident_id, "as": "ops-do",
        "lang": INCIDENT_NOTICE_LANG, "fields": INCIDENT_NOTICE})
    console.print(f"    notification {notice['id']} sent to "
                  f"{', '.join(notice['recipients'])}; on the incident's timeline.")
    return notice


#: the language each recipient of PL's notification reads it in (the scenario's)
READS_IN = {"US-JS": "en", "UA-GS": "uk"}


def _notice_entry(client: OperatorClient, incident_id: str, lang: str
                  ) -> dict[str, Any] | None:
    body = _incident(client, incident_id, lang)
    if body is None:
        return None
    return next((e for e in body["entries"] if e.get("notice")), None)


def as_read(c: Mapping[str, OperatorClient], incident_id: str, notice: dict[str, Any],
            console: Console) -> None:
    """PL's notification as each recipient's node renders it, in the recipient's
    language (read back from that node), then the signed receipts PL-GS holds."""
    for party in INCIDENT_MEMBERS:
        lang = READS_IN.get(party, "en")
        entry = _poll(f"the notification at {party}", lambda p=party, lg=lang:
                      _notice_entry(c[KEY[p]], incident_id, lg))
        shown = entry["notice"]
        console.print(f"    {party} reads it ({lang}): [bold]{escape(shown['title'])}[/]",
                      highlight=False)
        for f in shown["fields"]:
            console.print(f"      {escape(f['label'])} {escape(f['text'])}", highlight=False)

    def receipts() -> list[str] | None:
        got = c["pl"].request("GET", f"/api/v1/notifications/{notice['id']}")["receipts"]
        parties = sorted({r["party"] for r in got if r["receipt"] == "delivered"})
        return parties if len(parties) == len(INCIDENT_MEMBERS) else None

    delivered = _poll("the notification's delivered receipts", receipts)
    console.print(f"    PL-GS holds a signed \u201cdelivered\u201d receipt from "
                  f"{' and '.join(delivered)}: each node signed that the notification "
                  "reached it.")


def link_call(c: Mapping[str, OperatorClient], incident_id: str, call_id: str) -> None:
    """The US call to RU-GS on the incident's timeline."""
    c["us"].request("POST", f"/api/v1/incidents/{incident_id}/links", json={"call": call_id})


def assessments(c: Mapping[str, OperatorClient], incident_id: str, notice_entry: str,
                console: Console) -> None:
    """PL-GS's assessment, then the US assessment and UA's statement, each referring to
    the notification's entry."""
    for when, key, kind, confidence, text in INCIDENT_ASSESSMENTS:
        c[key].request("POST", f"/api/v1/incidents/{incident_id}/entries", json={
            "kind": kind, "text": text, "confidence": confidence, "refs": [notice_entry]})
        console.print(f"[bold]{when}[/] {PARTY[key]} adds its {kind} (confidence "
                      f"{confidence}) to the incident.")


#: The US attribution query to RU-GS's duty officer, and the answer the officer gives.
QUERY_QUESTION = ("Did Russian forces launch the missile that struck Przewodów, Poland, "
                  "at 15:40 CET on 15 November 2022?")
QUERY_DEADLINE = "30m"
QUERY_DETAILS = ("No Russian launch towards that area is known to the duty officer; "
                 "the General Staff is checking the records and will answer in writing.")


def attribution_query(c: Mapping[str, OperatorClient], incident_id: str,
                      console: Console, officer: Callable[[], str | None]
                      ) -> tuple[list[Outcome], int]:
    """The US attribution query to RU-GS about the incident (``hotline query
    ccp-do@RU-GS --about ID``), answered "unknown" with details by the officer on watch
    (``officer()``, as ``hotline schedule who`` names) before its deadline. Returns its
    rows of the outcome table and how many entries it added to the incident's timeline
    (its link)."""
    console.print("[bold]+3 h[/]   nmcc-do@US-JS asks RU-GS's duty officer about the "
                  f"incident, answer due within {QUERY_DEADLINE}:")
    asked = c["us"].request("POST", "/api/v1/queries", json={
        "to": "ccp-do@RU-GS", "as": "nmcc-do", "question": QUERY_QUESTION,
        "deadline": QUERY_DEADLINE, "about": incident_id})
    query_id = str(asked["id"])
    _poll("the query ringing at RU-GS", lambda: _state(c["ru"], query_id) == "ringing"
          or None)
    watch = officer()
    console.print(f"    ccp-do@RU-GS answers as {watch}: unknown, with details.")
    c["ru"].request("POST", f"/api/v1/queries/{query_id}/answer", json={
        "as": "ccp-do", "operator": watch, "answer": "unknown", "details": QUERY_DETAILS})

    def answered() -> dict[str, Any] | None:
        body: dict[str, Any] = c["us"].request("GET", f"/api/v1/queries/{query_id}")
        return body if body["query"]["answer"] is not None else None

    got = _poll("the answer to the query at US-JS", answered)
    q = got["query"]
    verified = "verified" if q.get("answer_verified") else "NOT verified"
    by = f" by {q['answered_by']}" if q.get("answered_by") else ""
    met = q["status"] == "answered" and q["answer"] == "unknown" \
        and bool(q.get("answer_verified"))
    return [Outcome("attribution query to RU-GS", met,
                    f"{q['status']}: {q['answer']}{by} before the deadline ({verified})")], 1


def _state(client: OperatorClient, call_id: str) -> str | None:
    try:
        body: dict[str, Any] = client.request("GET", f"/api/v1/calls/{call_id}")
    except HotlineError as exc:
        if exc.error_id in ("no-call", "not-found"):
            return None  # not arrived yet
        raise
    return str(body["state"])


def timeline_everywhere(c: Mapping[str, OperatorClient], incident_id: str, expected: int
                        ) -> list[dict[str, Any]] | None:
    """Wait until every member holds the same ``expected`` signed entries (the same
    statements in the same order); the timeline then, or None at the deadline."""
    def same() -> list[dict[str, Any]] | None:
        seen: list[list[dict[str, Any]]] = []
        for party in ("PL-GS", *INCIDENT_MEMBERS):
            body = _incident(c[KEY[party]], incident_id)
            if body is None:
                return None
            seen.append(body["entries"])
        statements = [[e["statement"] for e in entries] for entries in seen]
        if len(statements[0]) == expected and all(s == statements[0] for s in statements):
            return seen[0]
        return None
    try:
        found: list[dict[str, Any]] = _poll("the same timeline at every member", same)
        return found
    except HotlineError:
        return None


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


def print_timeline(console: Console, entries: list[dict[str, Any]]) -> None:
    """The timeline as US-JS reads it (notifications rendered in English)."""
    rows = []
    for e in entries:
        notice = e.get("notice")
        if notice:
            what = notice["title"] + ": " + "; ".join(
                f"{f['label']} {f['text']}" for f in notice["fields"])
        else:
            what = e["text"] or e["title"] or (
                f"{e['party']} joined" if e["type"] == "joined"
                else f"{e['link_kind']} {e['link']}")
        rows.append([_time(e["at"]), e["author"], e["type"], e["confidence"] or "", what])
    show(console, [Col("signed (UTC)", keep=True), Col("author", keep=True),
                   Col("entry", keep=True), Col("confidence", drop=1), Col("what")], rows)


def outcome_rows(c: Mapping[str, OperatorClient], incident_id: str,
                 notice: dict[str, Any], timeline: list[dict[str, Any]] | None
                 ) -> list[Outcome]:
    """The incident's rows of the demo's outcome table."""
    members = sorted(("PL-GS", *INCIDENT_MEMBERS))
    held = [party for party in members
            if (_incident(c[KEY[party]], incident_id) or {}).get("state") == "member"]
    ua = _incident(c["ua"], incident_id, "uk") or {"entries": []}
    read_in_uk = next((e["notice"]["title"] for e in ua["entries"] if e.get("notice")),
                      None)
    receipts = c["pl"].request("GET", f"/api/v1/notifications/{notice['id']}")["receipts"]
    delivered = sorted(r["party"] for r in receipts if r["receipt"] == "delivered")
    return [
        Outcome("incident", held == members, f"{INCIDENT_TITLE}: {', '.join(held)}"),
        Outcome("incident timeline", timeline is not None,
                f"{len(timeline)} entries, same at every member" if timeline is not None
                else "NOT the same at every member"),
        Outcome("incident notification", delivered == sorted(INCIDENT_MEMBERS),
                "delivered to " + (", ".join(delivered) or "nobody")),
        Outcome("UA-GS reads it (uk)", read_in_uk is not None, read_in_uk or "not held"),
    ]


def run(c: Mapping[str, OperatorClient], console: Console, incident_id: str,
        notice: dict[str, Any], call_linked: bool, officer: Callable[[], str | None]
        ) -> tuple[bool, list[Outcome]]:
    """After the calls: the assessments, the attribution hook, the shared timeline.
    Returns (every member holds the same timeline, outcome rows)."""
    assessments(c, incident_id, notice["entry"]["id"], console)
    rows_after, added = attribution_query(c, incident_id, console, officer)
    # opened, two joined, the notification, the linked call, the three assessments
    expected = 4 + int(call_linked) + len(INCIDENT_ASSESSMENTS) + added
    timeline = timeline_everywhere(c, incident_id, expected)
    if timeline is not None:
        console.print("The incident's timeline, the same at every member (as US-JS reads "
                      "it):")
        print_timeline(console, timeline)
    _poll("the notification's delivered receipts", lambda: len([
        r for r in c["pl"].request("GET", f"/api/v1/notifications/{notice['id']}")
        ["receipts"] if r["receipt"] == "delivered"]) == len(INCIDENT_MEMBERS) or None)
    return timeline is not None, [*outcome_rows(c, incident_id, notice, timeline),
                                  *rows_after]
