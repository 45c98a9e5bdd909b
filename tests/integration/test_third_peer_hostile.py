"""A hostile third peer (THREATS T18): PL-GS, linked to US-JS, sends US correctly signed
envelopes about objects of the US-RU line it is no party to — a query US asked RU, a
notice US sent RU, an incident US opened with RU. Each is refused with exactly one
security-log line and changes nothing; then a receipt PL may give (for a notice sent to
it) is taken, so the refusals are the checks, not a dead line.

US and RU run; PL does not: the test holds PL's keys and signs what it sends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotline.protocol.envelope import new_envelope_id
from hotline.protocol.incident import sign_entry
from hotline.protocol.notice import sign_notice_receipt
from hotline.protocol.statement import sign_call_state
from tests.calls import place, us_and_ru, wait_for_state
from tests.nodes import NodeProcess, link, nodes_on, wait_until
from tests.peers import send_sealed

FIELDS = ["event=missile-impact", "event_time=2022-11-15T15:40:00+01:00[Europe/Warsaw]",
          "place=Przewodów@50.47,23.93", "killed=2", "urgency=Immediate",
          "severity=Severe", "certainty=Observed", "confidence=high",
          "description=Explosion at a grain dryer."]


def _notify(node: NodeProcess, to: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "notify", "--template", "incident-notification",
         "--to", to, "--lang", "en", "--as", "nmcc-do", "--json",
         *[a for f in FIELDS for a in ("--field", f)], "--dir", str(node.dir)],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["id"])


def _refusals(node: NodeProcess) -> list[str]:
    return node.log_lines("hotline.security: refused")


def _pl_effects(node: NodeProcess) -> int:
    """Log entries naming PL-GS but the envelopes' arrival (stored, whatever their
    effect): an effect of a refused envelope would be one more."""
    return int(node.query("SELECT COUNT(*) FROM log_entries WHERE entry LIKE '%PL-GS%' "
                          "AND kind NOT IN ('received', 'link')")[0][0])


def _now() -> int:
    return time.time_ns() // 1_000_000


def test_a_third_peer_acts_on_nothing_of_another_line(tmp_path: Path) -> None:
    with nodes_on("sqlite", tmp_path) as make:
        _run(make)


def _run(make: Callable[..., NodeProcess]) -> None:
    us, ru = us_and_ru(make)
    pl = make("PL-GS")
    link(us, pl)
    pl_keys = pl.private_keys()
    seq = iter(range(1, 1000))

    # the US-RU line: a query ringing at RU, a notice to RU, an incident with RU invited
    r = us.api("POST", "/api/v1/queries", json={"to": "cgs@RU-GS", "as": "nmcc-do",
                                                "question": "Did you fire?",
                                                "deadline": "1h"})
    assert r.status_code == 201, r.text
    query = r.json()["id"]
    wait_for_state(ru, query, "ringing")
    wait_for_state(us, query, "ringing")
    call = place(us, "cgs@RU-GS", "nmcc-do", "plain call")
    wait_for_state(us, call, "ringing")
    notice = _notify(us, "RU-GS")
    r = us.api("POST", "/api/v1/incidents", json={"title": "Impact", "parties": ["RU-GS"]})
    assert r.status_code == 201, r.text
    incident = r.json()["id"]
    wait_until(lambda: ru.api("GET", f"/api/v1/incidents/{incident}").status_code == 200,
               what="the invitation at RU")

    def state(call_id: str, state_: str, **extra: Any) -> dict[str, Any]:
        stmt = sign_call_state(call=call_id, signer="PL-GS", n=1, state=state_, at=_now(),
                               caller="nmcc-do@US-JS", callee="cgs@PL-GS", keys=pl_keys,
                               role="cgs", **extra)
        return {"statement": stmt.raw}

    entry = sign_entry(keys=pl_keys, incident=incident, id=new_envelope_id(),
                       author="PL-GS", n=1, at=_now(), type="fact", text="PL was here").raw
    hostile: list[tuple[str, dict[str, Any], str]] = [
        # a query's answer and a call's states, for calls US placed with RU
        ("call.state", state(query, "answered", answer="no", details="not us"),
         f"state call {query}"),
        ("call.state", state(call, "declined", reason="go away"), f"state call {call}"),
        ("call.cancel", {"call": query}, f"cancel call {query}"),
        # a receipt for a notice US sent RU only
        ("notice.receipt", {"statement": sign_notice_receipt(
            notice=notice, author="US-JS", signer="PL-GS", receipt="acknowledged",
            at=_now(), keys=pl_keys, operator="x", role="cgs").raw}, notice),
        # an incident US opened and invited RU to: accept it, write in it, claim it
        ("incident.accept", {"incident": incident}, incident),
        ("incident.entries", {"incident": incident, "entries": [entry],
                              "sent_to": ["US-JS"], "history": False}, incident),
        ("incident.invite", {"incident": incident, "title": "Mine now",
                             "opener": "PL-GS"}, incident),
    ]
    calls_before = {c: us.api("GET", f"/api/v1/calls/{c}").json() for c in (query, call)}
    incident_before = us.api("GET", f"/api/v1/incidents/{incident}").json()
    log_before = _pl_effects(us)
    for type_, payload, needle in hostile:
        before = len(_refusals(us))
        send_sealed(us, "PL-GS", pl_keys, next(seq), type_, payload)
        lines = wait_until(lambda b=before: _refusals(us)[b:] or None, 15,  # type: ignore[misc]
                           what=f"the refusal of {type_}")
        assert len(lines) == 1, (type_, lines)
        assert f"refused {type_}" in lines[0], lines[0]
        assert "from peer PL-GS" in lines[0], lines[0]
        assert needle in lines[0], (needle, lines[0])

    # nothing of it changed anything
    for c, before_ in calls_before.items():  # RU's escalation goes on meanwhile
        after = us.api("GET", f"/api/v1/calls/{c}").json()
        assert after["state"] == before_["state"] == "ringing", after
        assert not [e for e in after["history"] if e.get("signed_by") == "PL-GS"], after
        assert after.get("query") == before_.get("query")
    assert us.query("SELECT COUNT(*) FROM call_events WHERE signer = 'PL-GS'")[0][0] == 0
    assert us.api("GET", f"/api/v1/incidents/{incident}").json() == incident_before
    assert us.query("SELECT COUNT(*) FROM notice_receipts WHERE party = 'PL-GS'")[0][0] == 0
    assert us.query("SELECT COUNT(*) FROM incident_entries WHERE statement LIKE "
                    "'%PL was here%'")[0][0] == 0
    assert _pl_effects(us) == log_before

    # what PL is a party to, it may act on: a receipt for a notice sent to it
    own = _notify(us, "PL-GS")
    before = len(_refusals(us))
    send_sealed(us, "PL-GS", pl_keys, next(seq), "notice.receipt", {
        "statement": sign_notice_receipt(notice=own, author="US-JS", signer="PL-GS",
                                         receipt="read", at=_now(), keys=pl_keys).raw})
    wait_until(lambda: us.query("SELECT COUNT(*) FROM notice_receipts WHERE party = "
                                "'PL-GS' AND notice_id = :n", n=own)[0][0] == 1 or None,
               what="PL's receipt for its own notice")
    assert _refusals(us)[before:] == []


pytestmark = pytest.mark.filterwarnings("ignore")


def test_an_opener_cannot_vouch_a_key_for_a_party_we_hold_a_link_with(
        tmp_path: Path) -> None:
    """PL-GS opens an incident and invites US-JS; US accepts. PL's history then says
    RU-GS joined — naming a key of PL's making for RU — and PL relays an entry "by RU"
    signed with it. US holds its own link with RU: RU's key is the link's, not the
    opener's word, so the entry is refused (one line, nothing kept). An author US has no
    link with is still verified with the key the opener names (docs/incidents.md)."""
    from hotline.protocol.keys import PartyKeys, b64e

    with nodes_on("sqlite", tmp_path) as make:
        us, ru, pl, ua = make("US-JS"), make("RU-GS"), make("PL-GS"), make("UA-GS")
        link(us, ru)
        link(us, pl)
        us.start()
        pl_keys, fake_ru, ua_keys = pl.private_keys(), PartyKeys.generate(), ua.private_keys()
        seq = iter(range(1, 1000))
        iid = new_envelope_id()
        send_sealed(us, "PL-GS", pl_keys, next(seq), "incident.invite",
                    {"incident": iid, "title": "Impact", "opener": "PL-GS"})
        wait_until(lambda: us.api("GET", f"/api/v1/incidents/{iid}").status_code == 200,
                   what="the invitation at US")
        r = us.api("POST", f"/api/v1/incidents/{iid}/accept")
        assert r.status_code == 200, r.text

        def entry(keys: PartyKeys, author: str, n: int, **fields: Any) -> str:
            return sign_entry(keys=keys, incident=iid, id=new_envelope_id(), author=author,
                              n=n, at=_now(), **fields).raw

        history = [
            entry(pl_keys, "PL-GS", 1, type="opened", title="Impact"),
            entry(pl_keys, "PL-GS", 2, type="joined", party="US-JS",
                  party_key=b64e(us.public_keys().sign_bytes)),
            entry(pl_keys, "PL-GS", 3, type="joined", party="RU-GS",
                  party_key=b64e(fake_ru.public.sign_bytes)),
            entry(pl_keys, "PL-GS", 4, type="joined", party="UA-GS",
                  party_key=b64e(ua_keys.public.sign_bytes)),
        ]
        send_sealed(us, "PL-GS", pl_keys, next(seq), "incident.entries",
                    {"incident": iid, "entries": history, "sent_to": ["US-JS"],
                     "history": True})
        wait_until(lambda: us.api("GET", f"/api/v1/incidents/{iid}").json()["state"]
                   == "member" or None, what="US a member")

        before = len(_refusals(us))
        send_sealed(us, "PL-GS", pl_keys, next(seq), "incident.entries", {
            "incident": iid, "sent_to": ["PL-GS"], "history": False,
            "entries": [entry(fake_ru, "RU-GS", 1, type="fact", text="RU confesses")]})
        # UA, with no link to US: the opener's word on its key is what US has
        send_sealed(us, "PL-GS", pl_keys, next(seq), "incident.entries", {
            "incident": iid, "sent_to": ["PL-GS"], "history": False,
            "entries": [entry(ua_keys, "UA-GS", 1, type="fact", text="UA reports")]})

        def texts() -> list[str]:
            got = us.api("GET", f"/api/v1/incidents/{iid}").json()["entries"]
            return [str(e["text"]) for e in got if e["text"]]
        # released in order: the forged entry was judged before UA's
        wait_until(lambda: "UA reports" in texts() or None, what="UA's relayed entry")
        assert "RU confesses" not in texts()
        lines = _refusals(us)[before:]
        assert len(lines) == 1, lines
        assert "refused incident.entries" in lines[0], lines[0]
        assert "RU-GS" in lines[0], lines[0]
