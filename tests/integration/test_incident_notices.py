"""Notifications on incidents across three real nodes: ``hotline notify … --incident``
sends to the members and puts the notification on the timeline (rendered in each
reader's language), and ``hotline export cap --incident`` gives one XSD-valid alert."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

from hotline.exports.cap import CAP_NS
from hotline.incidents.export import from_jsonl
from tests.calls import apply_scenario
from tests.integration.test_notices_nodes import FILE
from tests.nodes import PASSPHRASE, NodeProcess, link, wait_until
from tests.unit.test_exports import XSD

Make = Callable[..., NodeProcess]
NS = {"cap": CAP_NS}


def run(node: NodeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hotline", *args, "--dir", str(node.dir)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"HOTLINE_PASSPHRASE": PASSPHRASE, "PATH": "/usr/bin:/bin",
                               "COLUMNS": "400"})


def ok(node: NodeProcess, *args: str) -> str:
    done = run(node, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _state(node: NodeProcess, iid: str) -> str | None:
    rows = node.api("GET", "/api/v1/incidents").json()["incidents"]
    return next((r["state"] for r in rows if r["id"] == iid), None)


def _three(make: Make) -> tuple[NodeProcess, NodeProcess, NodeProcess, str]:
    """PL-GS opens an incident with US-JS and UA-GS, who accept (links PL-US, PL-UA)."""
    pl, us, ua = make("PL-GS"), make("US-JS"), make("UA-GS")
    link(pl, us)
    link(pl, ua)
    for node in (pl, us, ua):
        apply_scenario(node)
        node.start()
    iid = json.loads(ok(pl, "incident", "open", "--title", "Przewodów impact", "--party",
                        "US-JS", "--party", "UA-GS", "--json"))["id"]
    for node in (us, ua):
        wait_until(lambda n=node: _state(n, iid) == "invited", 30, what="the invitation")
        ok(node, "incident", "accept", iid)
    for node in (us, ua):
        wait_until(lambda n=node: _state(n, iid) == "member", 30, what="joining")
    return pl, us, ua, iid


def _notices(node: NodeProcess) -> int:
    return int(node.query("SELECT count(*) FROM notices")[0][0])


def test_notify_incident_reaches_the_members_and_its_timeline_in_their_language(
        make_sqlite_node: Make, tmp_path: Path) -> None:
    pl, us, ua, iid = _three(make_sqlite_node)
    toml = tmp_path / "notice.toml"
    toml.write_text(FILE.replace('to = ["US-JS"]\n', ""), encoding="utf-8")

    # a missing field is refused naming it: nothing is sent, nothing on the timeline
    entries_before = len(pl.api("GET", f"/api/v1/incidents/{iid}").json()["entries"])
    refused = pl.api("POST", "/api/v1/notifications", json={
        "template": "incident-notification", "incident": iid, "fields": {"killed": 2}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "event"
    # an incident this party does not hold: refused before anything is sent
    unknown = run(pl, "notify", "--file", str(toml), "--incident", "f" * 32)
    assert unknown.returncode == 1
    assert "no-incident" in unknown.stderr
    assert _notices(pl) == 0
    assert len(pl.api("GET", f"/api/v1/incidents/{iid}").json()["entries"]) == entries_before

    sent = json.loads(ok(pl, "notify", "--file", str(toml), "--incident", iid, "--json"))
    notice_id = sent["id"]
    assert sent["recipients"] == ["UA-GS", "US-JS"]
    assert sent["fields"]["incident"] == iid  # the template's reference, filled in
    assert sent["entry"]["type"] == "notification"
    assert sent["entry"]["refs"] == [notice_id]
    assert sent["entry"]["text"].startswith("Powiadomienie o incydencie — ")

    def entry_on(node: NodeProcess, lang: str) -> dict[str, Any] | None:
        body = node.api("GET", f"/api/v1/incidents/{iid}", params={"lang": lang}).json()
        found = [e for e in body["entries"] if e["type"] == "notification"]
        return found[0] if found and found[0]["notice"] else None
    ua_entry = wait_until(lambda: entry_on(ua, "uk"), 30, what="the notification on UA")
    assert ua_entry["id"] == sent["entry"]["id"]
    assert ua_entry["notice"]["id"] == notice_id
    assert ua_entry["notice"]["title"] == "Повідомлення про інцидент"
    fields = {f["name"]: f["text"] for f in ua_entry["notice"]["fields"]}
    assert fields["killed"] == "2"
    assert fields["event"] == "падіння ракети"
    assert "urgency" not in fields
    assert "description" not in fields
    us_entry = wait_until(lambda: entry_on(us, "en"), 30, what="the notification on US")
    assert us_entry["notice"]["title"] == "Incident notification"

    shown = ok(ua, "incident", "show", iid, "--lang", "uk")
    assert "Повідомлення про інцидент" in shown
    assert f"notification {notice_id}" in shown
    assert "Загиблі: 2" in shown

    # the incident's notifications as one CAP alert, XSD-valid, one <info> per language
    out = tmp_path / "incident.xml"
    ok(ua, "export", "cap", "--incident", iid, "--out", str(out))
    doc = etree.parse(str(out)).getroot()
    XSD.assertValid(doc)
    assert doc.findtext("cap:identifier", namespaces=NS) == iid
    assert doc.findtext("cap:sender", namespaces=NS) == "UA-GS"
    infos = doc.findall("cap:info", namespaces=NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == \
        ["en", "ar", "ru", "uk", "pl"]
    times = [doc.findtext("cap:sent", namespaces=NS),
             *[i.findtext("cap:onset", namespaces=NS) for i in infos]]
    assert all(t and t[-6] in "+-" and not t.endswith("Z") for t in times), times
    assert infos[0].findtext("cap:onset", namespaces=NS) == "2022-11-15T15:40:00+01:00"

    # JSON Lines: the notification's entry names it, and reads back
    lines = ok(us, "export", "jsonl", "--incident", iid)
    back = from_jsonl(lines)
    [entry] = [e for e in back["entries"] if e["type"] == "notification"]
    assert entry["refs"] == [notice_id]
    assert entry["notice"]["id"] == notice_id


def test_export_cap_of_an_incident_without_notification_is_refused(
        make_sqlite_node: Make, tmp_path: Path) -> None:
    pl, _us, _ua, iid = _three(make_sqlite_node)
    out = tmp_path / "none.xml"
    done = run(pl, "export", "cap", "--incident", iid, "--out", str(out))
    assert done.returncode == 1
    assert "no-incident-notification" in done.stderr
    assert not out.exists()
    unknown = run(pl, "export", "cap", "--incident", "e" * 32)
    assert unknown.returncode == 1
    assert "no-incident" in unknown.stderr


def test_a_notification_entry_shows_only_its_authors_notification(
        make_sqlite_node: Make, tmp_path: Path) -> None:
    """US-JS (a member, played by the test with its real key) signs a notification entry
    whose refs name a notification PL-GS sent outside the incident: PL's timeline does
    not show that notification as the entry's (nor as anyone's on the incident), and
    the incident's CAP export holds no notification."""
    from hotline.protocol.envelope import new_envelope_id
    from hotline.protocol.incident import sign_entry
    from tests.peers import send_sealed

    pl, us = make_sqlite_node("PL-GS"), make_sqlite_node("US-JS")
    link(pl, us)
    apply_scenario(pl)
    pl.start()
    us_keys = us.private_keys()
    iid = json.loads(ok(pl, "incident", "open", "--title", "Przewodów impact", "--party",
                        "US-JS", "--json"))["id"]
    send_sealed(pl, "US-JS", us_keys, 1, "incident.accept", {"incident": iid})
    wait_until(lambda: pl.api("GET", f"/api/v1/incidents/{iid}").json()["members"]
               == ["PL-GS", "US-JS"], 30, what="US to join")
    toml = tmp_path / "notice.toml"
    toml.write_text(FILE, encoding="utf-8")
    notice_id = json.loads(ok(pl, "notify", "--file", str(toml), "--json"))["id"]
    raw = sign_entry(keys=us_keys, incident=iid, id=new_envelope_id(), author="US-JS", n=1,
                     at=1_700_000_000_000, type="notification", text="see this",
                     refs=[notice_id]).raw
    send_sealed(pl, "US-JS", us_keys, 2, "incident.entries",
                {"incident": iid, "entries": [raw], "sent_to": ["PL-GS"], "history": False})

    def entry() -> dict[str, Any] | None:
        rows = pl.api("GET", f"/api/v1/incidents/{iid}").json()["entries"]
        return next((e for e in rows if e["type"] == "notification"), None)
    shown = wait_until(entry, 30, what="US's entry at PL")
    assert shown["refs"] == [notice_id]
    assert shown["notice"] is None
    cap = run(pl, "export", "cap", "--incident", iid)
    assert cap.returncode != 0
    assert "no-incident-notification" in cap.stdout + cap.stderr
