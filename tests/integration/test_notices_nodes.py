"""Formatted notifications across two real nodes: PL-GS notifies US-JS of the
Przewodów impact; US-JS reads it in its operator's language with PL's original one
step away; delivered / read / acknowledged come back signed, and PL verifies each with
US-JS's key; a template the receiver does not hold is refused, signed, and nothing of
it is kept."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from lxml import etree

from hotline.exports.jsonl import read_jsonl
from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.notice import verify_notice_receipt
from tests.calls import apply_scenario
from tests.forms_scenario import PRZEWODOW
from tests.nodes import NodeProcess, link, wait_until
from tests.unit.test_exports import XSD

FILE = """template = "incident-notification"
to = ["US-JS"]
lang = "pl"
as = "ops-do"

[fields]
event = "missile-impact"
event_time = { at = 2022-11-15T15:40:00+01:00, zone = "Europe/Warsaw" }
place = { name = "Przewodów", lat = 50.47, lon = 23.93 }
killed = 2
urgency = "Immediate"
severity = "Severe"
certainty = "Observed"
confidence = "high"
description = "Eksplozja na terenie suszarni zboża; zginęło dwóch mężczyzn."
"""


def _cli(node: NodeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hotline", *args, "--dir", str(node.dir)],
                          capture_output=True, text=True, timeout=60, check=False)


def _receipts(node: NodeProcess, notice_id: str) -> dict[str, dict[str, Any]]:
    body = node.api("GET", f"/api/v1/notifications/{notice_id}").json()
    return {r["receipt"]: r for r in body["receipts"]}


def _pl_and_us(make: Callable[..., NodeProcess]) -> tuple[NodeProcess, NodeProcess]:
    pl, us = make("PL-GS"), make("US-JS")
    link(pl, us)
    apply_scenario(pl)
    apply_scenario(us)
    return pl.start(), us.start()


def test_a_notification_is_delivered_rendered_and_receipted(
        make_node: Callable[..., NodeProcess]) -> None:
    pl, us = _pl_and_us(make_node)
    fields = [f"event={PRZEWODOW['event']}",
              "event_time=2022-11-15T15:40:00+01:00[Europe/Warsaw]",
              "place=Przewodów@50.47,23.93", "killed=2", "urgency=Immediate",
              "severity=Severe", "certainty=Observed", "confidence=high",
              f"description={PRZEWODOW['description']}"]
    sent = _cli(pl, "notify", "--template", "incident-notification", "--to", "US-JS",
                "--lang", "pl", "--as", "ops-do", "--json",
                *[a for f in fields for a in ("--field", f)])
    assert sent.returncode == 0, sent.stderr
    notice_id = json.loads(sent.stdout)["id"]

    def arrived() -> dict[str, Any] | None:
        answer = us.api("GET", f"/api/v1/notifications/{notice_id}", params={"lang": "ar"})
        return answer.json() if answer.status_code == 200 else None  # type: ignore[no-any-return]
    got = wait_until(arrived, 30, what="the notification on US-JS")
    assert got["party"] == "PL-GS"
    assert got["fields"] == {**PRZEWODOW}
    rows = {r["name"]: r for r in got["rendered"]["rows"]}
    assert got["rendered"]["dir"] == "rtl"
    assert rows["killed"]["label"] == "القتلى"
    assert rows["place"]["text"] == ("\u2068Przewodów\u2069 (\u206650.47°\u2069 شمالاً، "
                                     "\u206623.93°\u2069 شرقاً)")
    assert rows["description"]["translated"] is False
    assert got["original"]["lang"] == "pl"
    assert got["original"]["title"] == "Powiadomienie o incydencie"

    shown = _cli(us, "notification", "show", notice_id, "--lang", "ru")
    assert shown.returncode == 0, shown.stderr
    assert "Место: Przewodów (50,47° с. ш., 23,93° в. д.)" in shown.stdout  # noqa: RUF001
    assert "[не переведено] Eksplozja" in shown.stdout
    original = _cli(us, "notification", "show", notice_id, "--original")
    assert "Zabici: 2" in original.stdout

    # acknowledging in a role the operator does not hold, or a notice this node sent:
    # refused, one security line each, nothing signed
    not_held = us.api("POST", f"/api/v1/notifications/{notice_id}/receipts",
                      json={"receipt": "acknowledged", "as": "nmcc-do",
                            "operator": "cjcs-1"})
    assert (not_held.status_code, not_held.json()["error"]) == (403, "role-not-held")
    own = pl.api("POST", f"/api/v1/notifications/{notice_id}/receipts",
                 json={"receipt": "acknowledged", "as": "ops-do"})
    assert (own.status_code, own.json()["error"]) == (404, "no-notice")
    assert len(us.log_lines(f"/api/v1/notifications/{notice_id}/receipts: "
                            "role-not-held")) == 1
    assert len(pl.log_lines(f"/api/v1/notifications/{notice_id}/receipts: "
                            "no-notice")) == 1
    assert us.query("SELECT count(*) FROM notice_receipts")[0][0] == 1  # delivered only
    for kind in ("read", "acknowledged"):
        given = _cli(us, "notification", "receipt", notice_id, kind, "--as", "nmcc-do")
        assert given.returncode == 0, given.stderr
    def all_three() -> dict[str, dict[str, Any]] | None:
        found = _receipts(pl, notice_id)
        return found if len(found) == 3 else None
    again = _cli(us, "notification", "receipt", notice_id, "acknowledged", "--as", "nmcc-do")
    assert again.returncode == 0, again.stderr
    assert "already acknowledged" in again.stdout  # not "Signed …": nothing new is signed
    assert "nmcc-do" in again.stdout
    receipts = wait_until(all_three, 30, what="three receipts on PL-GS")
    assert receipts["acknowledged"]["role"] == "nmcc-do"
    us_keys = us.public_keys()
    for kind in ("delivered", "read", "acknowledged"):
        raw = pl.query("SELECT statement FROM notice_receipts WHERE notice_id = :n "
                       "AND party = 'US-JS' AND kind = :k", n=notice_id, k=kind)[0][0]
        stmt = verify_notice_receipt(raw, signer="US-JS", public=us_keys)
        assert (stmt.notice, stmt.receipt, stmt.author) == (notice_id, kind, "PL-GS")

    # exactly once on the receiver, and in both logs
    assert len(us.query("SELECT id FROM notices WHERE id = :n", n=notice_id)) == 1
    assert pl.query("SELECT count(*) FROM log_entries WHERE kind = 'notice-receipt' "
                    "AND subject = :n", n=notice_id)[0][0] == 3

    cap = _cli(pl, "export", "cap", "--notification", notice_id)
    assert cap.returncode == 0, cap.stderr
    XSD.assertValid(etree.fromstring(cap.stdout.encode()))
    lines = _cli(us, "export", "jsonl", "--notification", notice_id)
    assert lines.returncode == 0, lines.stderr
    [exported] = read_jsonl(lines.stdout)
    assert exported["fields"] == PRZEWODOW
    assert {r["receipt"] for r in exported["receipts"]} == {"delivered", "read",
                                                             "acknowledged"}
    for node in (pl, us):  # the log holds every notice and receipt, and agrees with state
        verified = _cli(node, "log", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_field_refused_sends_nothing(make_sqlite_node: Callable[..., NodeProcess]) -> None:
    pl, _us = _pl_and_us(make_sqlite_node)
    body = {"template": "incident-notification", "to": ["US-JS"],
            "fields": {**PRZEWODOW, "place": {"name": "P", "lat": "95", "lon": "23.93"}}}
    refused = pl.api("POST", "/api/v1/notifications", json=body)
    assert refused.status_code == 422
    assert refused.json()["field"] == "place"
    missing = _cli(pl, "notify", "--template", "incident-notification", "--to", "US-JS",
                   "--field", "killed=2")
    assert missing.returncode != 0
    assert "'event'" in missing.stderr
    assert pl.query("SELECT count(*) FROM notices")[0][0] == 0
    assert pl.query("SELECT count(*) FROM outbox WHERE type = 'notice'")[0][0] == 0

    # the same notification from a file: degrees as numbers, a TOML date-time
    path = pl.dir / "przewodow.toml"
    path.write_text(FILE, encoding="utf-8")
    sent = _cli(pl, "notify", "--file", str(path), "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["fields"] == PRZEWODOW
    path.write_text(FILE.replace("killed = 2", "killed = -2"), encoding="utf-8")
    refused_file = _cli(pl, "notify", "--file", str(path))
    assert refused_file.returncode != 0
    assert "'killed'" in refused_file.stderr
    assert pl.query("SELECT count(*) FROM notices")[0][0] == 1
    unknown = _cli(pl, "export", "cap", "--notification", "0" * 32)
    assert unknown.returncode != 0
    assert "no-notice" in unknown.stderr


def test_a_template_the_receiver_lacks_is_refused_signed(
        make_sqlite_node: Callable[..., NodeProcess]) -> None:
    """A notice of a template version US's node does not hold (as PL's newer node
    would send): US keeps nothing of it, logs the refusal once and signs a *refused*
    receipt naming the template, on its way back to PL."""
    pl, us = make_sqlite_node("PL-GS"), make_sqlite_node("US-JS")
    link(pl, us)
    apply_scenario(us)
    us.start()  # PL's node stays down: the envelope below is its first on the link
    notice_id = new_envelope_id()
    header = Header(id=new_envelope_id(), sender="PL-GS", recipient="US-JS",
                    kid=pl.public_keys().key_id, seq=1, ts=int(time.time() * 1000),
                    type="notice")
    payload = {"notice": notice_id, "template": "link-test", "version": 2, "lang": "pl",
               "fields": {"sequence": 1}, "recipients": ["US-JS"], "role": None,
               "operator": None, "sent_at": header.ts}
    raw = seal(header, payload, pl.private_keys(), us.public_keys())
    response = httpx.post(us.url + "/federation/v1/envelopes", content=raw + b"\n",
                          headers={"content-type": "application/x-ndjson"}, timeout=10)
    assert response.status_code == 200, response.text

    def refusal() -> str | None:
        rows = us.query("SELECT payload FROM outbox WHERE type = 'notice.receipt'")
        return str(json.loads(rows[0][0])["statement"]) if rows else None
    stmt = verify_notice_receipt(wait_until(refusal, 30, what="a refusal on US-JS"),
                                 signer="US-JS", public=us.public_keys())
    assert (stmt.notice, stmt.receipt) == (notice_id, "refused")
    assert stmt.reason is not None
    assert "'link-test' version 2" in stmt.reason
    assert us.query("SELECT count(*) FROM notices")[0][0] == 0
    assert len(us.log_lines(f"refused notice {notice_id} from peer PL-GS")) == 1
