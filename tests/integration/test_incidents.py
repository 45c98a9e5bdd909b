"""Incidents across real nodes (docs/incidents.md): PL-GS opens, US-JS and UA-GS accept
(US and UA have no link with each other: PL relays between them), RU-GS is linked with
PL and US but is not in the incident and learns nothing of it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

from hotline.accounts.offline import add_operator
from hotline.incidents.export import from_jsonl
from hotline.protocol.incident import verify_entry
from hotline.protocol.keys import b64e
from tests.calls import apply_scenario, place
from tests.nodes import PASSPHRASE, NodeProcess, link, wait_until
from tests.peers import console_session

Make = Callable[..., NodeProcess]
PASSWORD = "correct horse battery staple"


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def incident(node: NodeProcess, incident_id: str) -> dict[str, Any]:
    return _ok(node.api("GET", f"/api/v1/incidents/{incident_id}"))  # type: ignore[no-any-return]


def ids(node: NodeProcess, incident_id: str) -> list[str]:
    return [e["id"] for e in incident(node, incident_id)["entries"]]


def add(node: NodeProcess, incident_id: str, **body: Any) -> dict[str, Any]:
    return _ok(node.api("POST", f"/api/v1/incidents/{incident_id}/entries",  # type: ignore[no-any-return]
                        json=body), 201)


def cli(node: NodeProcess, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hotline", *args, "--dir", str(node.dir)],
                          capture_output=True, text=True, timeout=60,
                          env={"HOTLINE_PASSPHRASE": PASSPHRASE, "PATH": "/usr/bin:/bin",
                               "COLUMNS": "400"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_members_share_one_timeline_relayed_by_the_opener_and_outsiders_learn_nothing(
        make_node: Make, tmp_path: Path) -> None:
    """On SQLite and on PostgreSQL."""
    pl, us, ua, ru = (make_node(p) for p in ("PL-GS", "US-JS", "UA-GS", "RU-GS"))
    for a, b in ((pl, us), (pl, ua), (pl, ru), (us, ru)):
        link(a, b)
    for node in (pl, us, ua, ru):
        node.configure("log", checkpoint_seconds=0.3)
        apply_scenario(node)
        node.start()

    opened = json.loads(cli(pl, "incident", "open", "--title", "Przewodów impact",
                            "--party", "US-JS", "--party", "UA-GS", "--json"))
    iid = opened["id"]
    assert opened["invited"] == ["UA-GS", "US-JS"]
    assert opened["members"] == ["PL-GS"]
    fact = add(pl, iid, kind="fact", text="Explosion at Przewodów, 2 killed",
               confidence="high")

    # invited: the title and the opener, no timeline until accepted
    def state(node: NodeProcess) -> str | None:
        rows = _ok(node.api("GET", "/api/v1/incidents"))["incidents"]
        return next((r["state"] for r in rows if r["id"] == iid), None)
    wait_until(lambda: state(us) == "invited" and state(ua) == "invited", 30,
               what="the invitations")
    assert incident(us, iid)["entries"] == []
    listed = json.loads(cli(us, "incident", "list", "--json"))
    assert [(i["id"], i["title"], i["members"]) for i in listed["incidents"]] == \
        [(iid, "Przewodów impact", ["PL-GS"])]

    # acceptance brings the whole history from the opening
    cli(us, "incident", "accept", iid)
    wait_until(lambda: state(us) == "member", 30, what="US to join")
    us_view = incident(us, iid)
    assert [e["type"] for e in us_view["entries"]] == ["opened", "fact", "joined"]
    assert us_view["entries"][1]["text"] == fact["text"]
    _ok(ua.api("POST", f"/api/v1/incidents/{iid}/accept"))
    wait_until(lambda: state(ua) == "member", 30, what="UA to join")
    wait_until(lambda: len(ids(us, iid)) == 4, 30, what="US to learn UA joined")

    # US has no link with UA: PL relays US's entry, US's signature intact
    claim = add(us, iid, kind="claim", text="Likely a Ukrainian air-defence interceptor",
                confidence="moderate", source="US-JS", refs=[fact["id"]])
    wait_until(lambda: claim["id"] in ids(ua, iid), 30, what="the relay to UA")
    relayed = next(e for e in incident(ua, iid)["entries"] if e["id"] == claim["id"])
    assert relayed["via"] == "PL-GS"
    assert relayed["author"] == "US-JS"
    assert verify_entry(relayed["statement"], us.public_keys().sign_bytes).text == claim["text"]

    # a correction is a new entry; the old one stays as it was
    wrong = add(ua, iid, kind="assessment", text="Russian missile", confidence="low")
    wait_until(lambda: wrong["id"] in ids(us, iid), 30, what="UA's entry via PL to US")
    before = {n.party: next(e["statement"] for e in incident(n, iid)["entries"]
                            if e["id"] == wrong["id"]) for n in (pl, us, ua)}
    fix = add(ua, iid, kind="assessment", text="Fragments consistent with an S-300 "
              "interceptor", confidence="moderate", corrects=wrong["id"])
    assert fix["refs"] == [wrong["id"]]
    for node in (pl, us, ua):
        wait_until(has(node, iid, fix["id"]), 30, what="the correction")
        old = next(e for e in incident(node, iid)["entries"] if e["id"] == wrong["id"])
        assert old["statement"] == before[node.party]
        assert old["text"] == "Russian missile"
        assert old["corrected_by"] == [fix["id"]]

    shown = cli(ua, "incident", "show", iid)
    assert "Przewodów impact" in shown
    assert f"CORRECTED by {fix['id']}" in shown
    assert "relayed by PL-GS" in shown
    assert "Przewodów impact" in cli(ua, "incident", "list")

    # a call of US's (to RU-GS, outside the incident) on the timeline, relayed to UA
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "Przewodów")
    linked = json.loads(cli(us, "incident", "link", iid, "--call", call_id, "--json"))
    assert (linked["type"], linked["link_kind"], linked["link"]) == ("link", "call", call_id)
    wait_until(has(ua, iid, linked["id"]), 30, what="the link entry at UA")
    missing_call = us.api("POST", f"/api/v1/incidents/{iid}/links", json={"call": "f" * 32})
    assert missing_call.status_code == 404
    assert missing_call.json()["error"] == "no-call"

    # every member holds the same timeline, in the same (signed) order
    timelines = {n.party: [(e["id"], e["statement"]) for e in incident(n, iid)["entries"]]
                 for n in (pl, us, ua)}
    assert timelines["PL-GS"] == timelines["US-JS"] == timelines["UA-GS"]
    assert len(timelines["PL-GS"]) == 8
    signed = [e["at"] for e in incident(pl, iid)["entries"]]
    assert signed == sorted(signed)

    # every entry is in each member's log, under the incident
    for node in (pl, us, ua):
        logged = node.query("SELECT idx FROM log_entries WHERE kind = 'incident-entry' "
                            "AND subject = :s", s=iid)
        assert len(logged) == 8

    # JSON Lines round-trip
    exported = cli(pl, "export", "jsonl", "--incident", iid)
    assert from_jsonl(exported) == incident(pl, iid)

    # the incident as an evidence bundle of UA's log, checked by a third party
    bundle = tmp_path / "incident-evidence.json"

    def evidence_written() -> bool:
        done = subprocess.run([sys.executable, "-m", "hotline", "export", "evidence", "--dir",
                               str(ua.dir), "--incident", iid, "--out", str(bundle)],
                              capture_output=True, text=True, timeout=60, check=False)
        return done.returncode == 0
    wait_until(evidence_written, 30, interval=0.5, what="a checkpoint covering the incident")
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({n.party: {"sign": b64e(n.public_keys().sign_bytes)}
                                for n in (pl, us, ua)}))
    checked = subprocess.run([sys.executable, "-m", "hotline", "verify-bundle", str(bundle),
                              "--keys", str(keys), "--json"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    kinds = [json.loads(e["entry"])["kind"] for e in json.loads(bundle.read_text())["entries"]]
    assert kinds.count("incident-entry") == 8

    # RU-GS, linked with PL and US, is outside: nothing, not even the existence
    assert _ok(ru.api("GET", "/api/v1/incidents")) == {"incidents": []}
    missing = ru.api("GET", f"/api/v1/incidents/{iid}")
    unknown = ru.api("GET", "/api/v1/incidents/" + "0" * 32)
    assert missing.status_code == unknown.status_code == 404
    assert missing.json()["error"] == unknown.json()["error"] == "no-incident"
    assert ru.query("SELECT envelope_id FROM inbound WHERE type LIKE 'incident.%'") == []
    assert ru.query("SELECT idx FROM log_entries WHERE subject = :s", s=iid) == []
    assert ru.query("SELECT id FROM incidents") == []
    assert add_refused(ru, iid) == "no-incident"

    # the console: a member's operator reads the timeline and adds to it; an outsider's
    # console shows nothing of the incident
    with closing(console_session(ua, "do-1", add_operator(ua.dir, "do-1", PASSWORD).secret,
                                 PASSWORD)) as do:
        _console_member(do, pl, iid)
    with closing(console_session(ru, "cgs-1", add_operator(ru.dir, "cgs-1",
                                                           PASSWORD).secret,
                                 PASSWORD)) as outsider:
        assert "Przewodów" not in outsider.get("/incidents").text
        theirs = outsider.get(f"/incidents/{iid}")
        nothing = outsider.get("/incidents/" + "0" * 32)
        assert theirs.status_code == nothing.status_code == 404
        assert "Przewodów" not in theirs.text

    # a restart checks the log against the state (incident kinds included) and keeps all
    for node in (pl, us, ua):  # the opener, a direct member and one relayed to
        before_restart = incident(node, iid)
        node.stop()
        node.start()
        assert incident(node, iid) == before_restart


def _console_member(do: httpx.Client, pl: NodeProcess, iid: str) -> None:
    listing = do.get("/incidents")
    assert listing.status_code == 200
    assert "Przewodów impact" in listing.text
    page = do.get(f"/incidents/{iid}")
    assert page.status_code == 200
    assert "Likely a Ukrainian air-defence interceptor" in page.text
    assert "relayed by" in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    posted = do.post(f"/incidents/{iid}/entries", data={
        "csrf": token.group(1), "kind": "fact", "text": "Two fragments recovered",
        "confidence": "high", "corrects": ""})
    assert posted.status_code == 303, posted.text
    wait_until(lambda: "Two fragments recovered" in
               [e["text"] for e in incident(pl, iid)["entries"]], 30,
               what="the console's entry at PL")
    empty = do.post(f"/incidents/{iid}/entries", data={
        "csrf": token.group(1), "kind": "fact", "text": "", "confidence": "certain"})
    assert empty.status_code == 400


def has(node: NodeProcess, iid: str, entry_id: str) -> Callable[[], bool]:
    return lambda: entry_id in ids(node, iid)


def add_refused(node: NodeProcess, iid: str) -> str:
    r = node.api("POST", f"/api/v1/incidents/{iid}/entries",
                 json={"kind": "fact", "text": "x"})
    assert r.status_code == 404, r.text
    return str(r.json()["error"])


def test_hostile_peers_are_refused_with_one_line_and_nothing_stored(
        make_sqlite_node: Make) -> None:
    """US-JS (a member) and RU-GS (not one) are played by the test with their real keys:
    entries for an incident RU is not in, an author forged, a relay by a non-opener, a
    bad signature and a reused entry number are each refused with one security-log line
    and nothing of them kept; a valid entry after them is taken (the line goes on)."""
    from hotline.protocol.incident import sign_entry
    from hotline.protocol.keys import PartyKeys
    from tests.peers import send_sealed

    pl, us, ru = (make_sqlite_node(p) for p in ("PL-GS", "US-JS", "RU-GS"))
    link(pl, us)
    link(pl, ru)
    pl.start()
    us_keys, ru_keys = us.private_keys(), ru.private_keys()
    iid = _ok(pl.api("POST", "/api/v1/incidents",
                     json={"title": "Przewodów impact", "parties": ["US-JS"]}), 201)["id"]
    send_sealed(pl, "US-JS", us_keys, 1, "incident.accept", {"incident": iid})
    wait_until(lambda: incident(pl, iid)["members"] == ["PL-GS", "US-JS"], 30,
               what="US to join")
    stored = len(ids(pl, iid))
    logged = len(pl.query("SELECT idx FROM log_entries WHERE kind = 'incident-entry'"))

    def entry(keys: PartyKeys, author: str, n: int, text: str) -> str:
        from hotline.protocol.envelope import new_envelope_id
        return sign_entry(keys=keys, incident=iid, id=new_envelope_id(), author=author,
                          n=n, at=1_700_000_000_000, type="fact", text=text).raw

    def payload(*raws: str) -> dict[str, Any]:
        return {"incident": iid, "entries": list(raws), "sent_to": ["PL-GS"],
                "history": False}

    first = entry(us_keys, "US-JS", 1, "first")
    hostile = [
        ("RU-GS", ru_keys, payload(entry(ru_keys, "RU-GS", 1, "not a member"))),
        ("US-JS", us_keys, payload(entry(us_keys, "PL-GS", 9, "forged author"))),
        ("US-JS", us_keys, payload(entry(ru_keys, "RU-GS", 2, "relayed by a non-opener"))),
        ("US-JS", us_keys, payload(entry(PartyKeys.generate(), "US-JS", 1, "thief"))),
        ("US-JS", us_keys, {**payload(first), "history": "yes"}),
    ]
    seqs = {"US-JS": 2, "RU-GS": 1}
    before = len(pl.log_lines("refused incident.entries"))
    for sender, keys, body in hostile:
        send_sealed(pl, sender, keys, seqs[sender], "incident.entries", body)
        seqs[sender] += 1
    send_sealed(pl, "US-JS", us_keys, seqs["US-JS"], "incident.entries", payload(first))
    seqs["US-JS"] += 1
    wait_until(lambda: len(ids(pl, iid)) == stored + 1, 30, what="the valid entry")
    # the same number signed again as another entry: equivocation, refused
    send_sealed(pl, "US-JS", us_keys, seqs["US-JS"], "incident.entries",
                payload(entry(us_keys, "US-JS", 1, "another first")))
    wait_until(lambda: len(pl.log_lines("refused incident.entries")) >= before + 6, 30,
               what="the refusals")
    assert len(pl.log_lines("refused incident.entries")) == before + 6
    # an acceptance by a party never invited: refused, RU does not become a member
    send_sealed(pl, "RU-GS", ru_keys, seqs["RU-GS"], "incident.accept", {"incident": iid})
    wait_until(lambda: pl.log_lines("refused incident.accept"), 30, what="the refusal")
    assert len(pl.log_lines("refused incident.accept")) == 1
    assert incident(pl, iid)["members"] == ["PL-GS", "US-JS"]
    texts = [e["text"] for e in incident(pl, iid)["entries"]]
    assert "first" in texts
    assert not {"not a member", "forged author", "relayed by a non-opener", "thief",
                "another first"} & set(texts)
    assert len(pl.query("SELECT idx FROM log_entries WHERE kind = 'incident-entry'")) == \
        logged + 1


def test_an_edited_entry_is_named_by_the_state_check(make_sqlite_node: Make) -> None:
    """An entry's stored statement changed behind the node's back: `hotline log verify`
    names the row (the log keeps the statement's digest)."""
    from sqlalchemy import create_engine, text

    pl, us = make_sqlite_node("PL-GS"), make_sqlite_node("US-JS")
    link(pl, us)
    pl.start()
    iid = _ok(pl.api("POST", "/api/v1/incidents", json={"title": "Przewodów impact"}),
              201)["id"]
    entry = add(pl, iid, kind="fact", text="two killed")
    pl.stop()
    clean = subprocess.run([sys.executable, "-m", "hotline", "log", "verify", "--dir",
                            str(pl.dir)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    engine = create_engine(pl.config.db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE incident_entries SET statement = replace(statement, "
                          "'two killed', 'nobody hurt') WHERE id = :i"), {"i": entry["id"]})
    engine.dispose()
    edited = subprocess.run([sys.executable, "-m", "hotline", "log", "verify", "--dir",
                             str(pl.dir)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert edited.returncode == 1
    assert f"incident_entries id={entry['id']}" in edited.stdout + edited.stderr


def _log_verify(node: NodeProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hotline", "log", "verify", "--dir",
                           str(node.dir)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_edited_incident_rows_and_entry_columns_are_named_by_the_state_check(
        make_sqlite_node: Make) -> None:
    """The statement intact but the row's columns edited behind the node's back: an
    entry moved to another incident's timeline (``incident_id``), its signed time moved
    (``at``), and a party written into an incident's members — `hotline log verify` names
    each row (the entry's columns are what its signed statement says; the members what the
    last membership entry logged)."""
    from sqlalchemy import create_engine, text

    pl, us = make_sqlite_node("PL-GS"), make_sqlite_node("US-JS")
    link(pl, us)
    pl.start()
    first = _ok(pl.api("POST", "/api/v1/incidents", json={"title": "Przewodów impact"}),
                201)["id"]
    other = _ok(pl.api("POST", "/api/v1/incidents", json={"title": "Another"}), 201)["id"]
    entry = add(pl, first, kind="fact", text="two killed")
    pl.stop()
    clean = _log_verify(pl)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    engine = create_engine(pl.config.db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE incident_entries SET incident_id = :o, at = 1 "
                          "WHERE id = :i"), {"o": other, "i": entry["id"]})
        conn.execute(text("UPDATE incidents SET members = :m WHERE id = :i"),
                     {"m": json.dumps(["PL-GS", "RU-GS"]), "i": first})
    engine.dispose()
    edited = _log_verify(pl)
    out = edited.stdout + edited.stderr
    assert edited.returncode == 1, out
    assert f"incident_entries id={entry['id']}" in out
    assert "incident_id" in out
    assert f"incidents id={first}" in out
    assert "RU-GS" in out
    repaired = subprocess.run([sys.executable, "-m", "hotline", "repair", "--from-log",
                               "--yes", "--dir", str(pl.dir)], capture_output=True,
                              text=True, timeout=60, check=False)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    again = _log_verify(pl)
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_long_history_reaches_a_new_member_in_envelopes_under_the_size_limit(
        make_sqlite_node: Make) -> None:
    """64 entries of 4,000 four-byte characters (a full batch by count, over the
    envelope's byte limit as one envelope): the new member still receives the whole
    history, and the line goes on."""
    pl, us = make_sqlite_node("PL-GS"), make_sqlite_node("US-JS")
    link(pl, us)
    for node in (pl, us):
        apply_scenario(node)
        node.start()
    iid = _ok(pl.api("POST", "/api/v1/incidents", json={"title": "Przewodów impact"}),
              201)["id"]
    for i in range(64):
        add(pl, iid, kind="fact", text=f"{i:02d}" + "\U0001f4a5" * 3998)
    _ok(pl.api("POST", f"/api/v1/incidents/{iid}/invitations", json={"party": "US-JS"}))
    wait_until(lambda: any(r["id"] == iid for r in
                           _ok(us.api("GET", "/api/v1/incidents"))["incidents"]), 30,
               what="the invitation")
    _ok(us.api("POST", f"/api/v1/incidents/{iid}/accept"))
    wait_until(lambda: len(ids(us, iid)) == 66, 60, what="the whole history at US")
    assert ids(us, iid) == ids(pl, iid)
