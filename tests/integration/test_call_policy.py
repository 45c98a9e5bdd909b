"""What may be called, who may answer, and what rings: policies, the directory file,
desks, a forged call, a webhook ring, and a three-party conference."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from hotline.notify.webhook import verify_webhook
from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.keys import PartyKeys
from hotline.scenario import directory_toml
from tests.calls import (
    apply_scenario,
    apply_toml,
    get_call,
    place,
    us_and_ru,
    wait_for_desks,
    wait_for_event,
    wait_for_state,
)
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]


@pytest.fixture
def us_ru(make_sqlite_node: Make) -> tuple[NodeProcess, NodeProcess]:
    return us_and_ru(make_sqlite_node)


def outbox_count(node: NodeProcess) -> int:
    return int(node.query("SELECT COUNT(*) FROM outbox")[0][0])


def test_a_forbidden_call_and_a_call_without_a_link_are_refused_at_once(
        us_ru: tuple[NodeProcess, NodeProcess]) -> None:
    us, _ru = us_ru
    before = outbox_count(us)
    forbidden = us.api("POST", "/api/v1/calls", json={"to": "cgs@RU-GS", "as": "vcjcs"})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "call-forbidden"
    no_link = us.api("POST", "/api/v1/calls", json={"to": "cgs@PL-GS", "as": "cjcs"})
    assert no_link.status_code == 404
    assert no_link.json()["error"] == "no-link"
    bad = us.api("POST", "/api/v1/calls", json={"to": "cgs", "as": "cjcs"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "bad-address"
    unknown_role = us.api("POST", "/api/v1/calls", json={"to": "cgs@RU-GS", "as": "janitor"})
    assert unknown_role.status_code == 404
    assert outbox_count(us) == before
    assert us.query("SELECT COUNT(*) FROM calls")[0][0] == 0


def test_only_a_rung_role_held_by_the_operator_may_answer(
        us_ru: tuple[NodeProcess, NodeProcess]) -> None:
    us, ru = us_ru
    call_id = place(us, "cgs@RU-GS", "nmcc-do")
    wait_for_event(ru, call_id, "ringing", "cgs")
    not_rung = ru.api("POST", f"/api/v1/calls/{call_id}/answer", json={"as": "ccp-do"})
    assert not_rung.status_code == 403
    assert not_rung.json()["error"] == "not-rung"
    not_held = ru.api("POST", f"/api/v1/calls/{call_id}/answer",
                      json={"as": "cgs", "operator": "ccp-1"})
    assert not_held.status_code == 403
    assert not_held.json()["error"] == "role-not-held"
    no_reason = ru.api("POST", f"/api/v1/calls/{call_id}/decline",
                       json={"as": "cgs", "reason": "   "})
    assert no_reason.status_code == 400
    assert get_call(ru, call_id)["state"] == "ringing"  # type: ignore[index]
    # the caller cancels: both sides end cancelled, and nothing rings any more
    assert us.api("POST", f"/api/v1/calls/{call_id}/cancel").status_code == 200
    wait_for_state(ru, call_id, "cancelled")

    def cancelled_by() -> set[str]:
        call = get_call(us, call_id)
        assert call is not None
        return {e["signed_by"] for e in call["history"] if e["state"] == "cancelled"}
    # US's own statement is there at once; RU's confirmation follows over the link
    wait_until(lambda: cancelled_by() == {"US-JS", "RU-GS"}, 30,
               what="both sides' cancelled statements on US")
    late = ru.api("POST", f"/api/v1/calls/{call_id}/answer", json={"as": "cgs"})
    assert late.status_code == 409


def test_desks_show_staffed_only_with_an_on_duty_operator_seen_recently(
        us_ru: tuple[NodeProcess, NodeProcess]) -> None:
    us, ru = us_ru
    desks = {d["role"]: d for d in wait_for_desks(us, "RU-GS")}
    assert set(desks) == {"cgs", "cgs-1d", "ccp-do", "dcd"}
    assert not desks["ccp-do"]["staffed"]  # on duty, but nobody seen yet
    # the officer on watch (the rotation's) is seen: what `hotline schedule who` names
    [officer] = ru.api("GET", "/api/v1/schedules/ccp-do/who").json()["holders"]
    assert ru.api("POST", "/api/v1/presence", json={"operator": officer}).status_code == 204
    assert ru.api("POST", "/api/v1/presence", json={"operator": "cgs-1"}).status_code == 204

    def staffed() -> dict[str, bool]:
        rows = us.api("GET", "/api/v1/desks").json()["desks"]
        return {d["role"]: d["staffed"] for d in rows if d["party"] == "RU-GS"}
    wait_until(lambda: staffed()["ccp-do"], 15, what="ccp-do staffed")
    assert staffed()["cgs"] is False  # seen, but off duty
    unknown = ru.api("POST", "/api/v1/presence", json={"operator": "nobody"})
    assert unknown.status_code == 404


def test_a_forged_call_is_rejected_and_nothing_rings(
        us_ru: tuple[NodeProcess, NodeProcess]) -> None:
    us, ru = us_ru
    forger = PartyKeys.generate()
    header = Header(id=new_envelope_id(), sender="US-JS", recipient="RU-GS",
                    kid=us.public_keys().key_id, seq=1, ts=int(time.time() * 1000),
                    type="call.place")
    payload = {"call": "ab" * 16, "caller_role": "cjcs", "callee_role": "cgs",
               "reason": "forged", "placed_at": header.ts, "budget_ms": None, "parent": None}
    raw = seal(header, payload, forger, ru.public_keys())
    response = httpx.post(ru.url + "/federation/v1/envelopes", content=raw + b"\n",
                          headers={"content-type": "application/x-ndjson"}, timeout=10)
    assert response.json()["results"][0]["error"] == "bad-signature"
    assert ru.query("SELECT COUNT(*) FROM calls")[0][0] == 0
    assert ru.log_lines("bad-signature")


def test_the_directory_file_is_checked_and_applied_idempotently(
        make_sqlite_node: Make) -> None:
    from hotline.admin import apply_directory
    from hotline.errors import HotlineError

    node = make_sqlite_node("RU-GS")
    text = directory_toml("RU-GS", 60, peers=())  # not linked: no policies
    path = node.dir / "d.toml"
    path.write_text(text)
    first = apply_directory(node.dir, path)
    again = apply_directory(node.dir, path)
    assert (first[0], first[1]) == (1, True)
    assert (again[0], again[1]) == (1, False)
    path.write_text(text.replace('wait = "2000ms"', 'wait = "2x"', 1))
    with pytest.raises(HotlineError) as refused:
        apply_directory(node.dir, path)
    assert "d.toml:" in refused.value.message
    assert "chains.cgs.steps[0].wait" in refused.value.message
    assert node.query("SELECT MAX(version) FROM directory_versions")[0][0] == 1


class _Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, dict[str, str]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((body, dict(self.headers.items())))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    received: ClassVar[list[tuple[bytes, dict[str, str]]]] = []
    handler = type("Hooks", (_Hooks,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/ring", received
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("speed", "retried_for_ms"), [
    (200, 3_600_000),  # steps of 600 ms: an hour, the least a ring is retried for
    (0.01, 2 * 12_000_000),  # steps of 200 min: until the second step has had its turn
])
def test_a_chain_step_rings_a_webhook_signed_with_hmac(
        make_sqlite_node: Make,
        hook_server: tuple[str, list[tuple[bytes, dict[str, str]]]],
        speed: float, retried_for_ms: int) -> None:
    url, received = hook_server
    secret = "a-webhook-secret-of-some-length"
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    apply_scenario(us)
    ru_toml = directory_toml("RU-GS", speed).replace(
        '[[chains.cgs.steps]]\nring = ["cgs"]',
        '[[chains.cgs.steps]]\nring = ["cgs"]\nchannels = ["console", "duty-hook"]', 1)
    ru_toml += f'\n[channels.duty-hook]\nkind = "webhook"\nurl = "{url}"\nsecret = "{secret}"\n'
    apply_toml(ru, ru_toml)
    us.start()
    ru.start()
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "check the webhook")
    wait_until(lambda: received, 30, what="the webhook ring")
    body, headers = received[0]
    alert = json.loads(body)
    assert alert["call_id"] == call_id
    assert alert["kind"] == "ringing"
    assert alert["roles"] == ["cgs"]
    assert verify_webhook(secret.encode(), body, headers, time.time())
    assert not verify_webhook(b"another-secret-entirely!", body, headers, time.time())
    # the notifier marks the row delivered once the server's answer is in
    wait_until(lambda: ru.query("SELECT COUNT(*) FROM notifications "
                                "WHERE delivered_at IS NOT NULL")[0][0] >= 1, 15,
               what="the notification row to be marked delivered")
    assert ru.query("SELECT retry_until - created_at FROM notifications") \
        == [(retried_for_ms,)]


def test_a_conference_of_three_parties_exchanges_messages(make_sqlite_node: Make) -> None:
    us, ua, pl = (make_sqlite_node(p) for p in ("US-JS", "UA-GS", "PL-GS"))
    link(us, ua)
    link(us, pl)
    link(pl, ua)
    for node in (us, ua, pl):
        apply_scenario(node)
        node.start()
    call_id = place(us, "cinc@UA-GS", "cjcs", "Przewodow: who fired?")
    wait_for_event(ua, call_id, "ringing", "cinc")
    ua.api("POST", f"/api/v1/calls/{call_id}/answer", json={"as": "cinc"})
    wait_for_state(us, call_id, "answered")
    added = us.api("POST", f"/api/v1/conversations/{call_id}/members", json={"party": "PL-GS"})
    assert added.status_code == 200, added.text
    assert added.json()["members"] == ["PL-GS", "UA-GS", "US-JS"]
    wait_until(lambda: pl.api("GET", f"/api/v1/conversations/{call_id}").status_code == 200,
               30, what="PL to join")
    wait_until(lambda: ua.api("GET", f"/api/v1/conversations/{call_id}")
               .json()["members"] == ["PL-GS", "UA-GS", "US-JS"], 30, what="UA to see PL")
    for node, role in ((us, "cjcs"), (ua, "cinc"), (pl, "cgs")):
        r = node.api("POST", f"/api/v1/conversations/{call_id}/messages",
                     json={"text": f"from {node.party}", "as": role})
        assert r.status_code == 201, r.text

    def texts(node: NodeProcess) -> set[str]:
        conv = node.api("GET", f"/api/v1/conversations/{call_id}").json()
        return {m["text"] for m in conv["messages"]}
    everyone = {"from US-JS", "from UA-GS", "from PL-GS"}
    for node in (us, ua, pl):
        wait_until(lambda n=node: texts(n) == everyone, 30, what=f"all messages at {node.party}")
    # a person's read receipt travels back to the author, signed
    conv = ua.api("GET", f"/api/v1/conversations/{call_id}").json()
    from_us = next(m for m in conv["messages"] if m["party"] == "US-JS")
    read = ua.api("POST", f"/api/v1/messages/{from_us['id']}/receipts",
                  json={"receipt": "acknowledged", "as": "cinc"})
    assert read.status_code == 201, read.text

    def receipts() -> list[str]:
        c = us.api("GET", f"/api/v1/conversations/{call_id}").json()
        mine = next(m for m in c["messages"] if m["id"] == from_us["id"])
        return sorted(f"{r['receipt']}:{r['party']}" for r in mine["receipts"] if r["verified"])
    wait_until(lambda: "acknowledged:UA-GS" in receipts(), 30, what="the acknowledgement")
    assert {"delivered:UA-GS", "delivered:PL-GS"} <= set(receipts())


def test_the_directory_and_the_roster_change_through_the_operator_api(
        us_ru: tuple[NodeProcess, NodeProcess]) -> None:
    us, ru = us_ru
    bad = ru.api("PUT", "/api/v1/directory", json={"toml": '[roles.cgs]\ntitle = 5\n'})
    assert bad.status_code == 400
    assert "directory.toml:2: roles.cgs.title" in bad.json()["message"]
    before = ru.api("GET", "/api/v1/directory").json()["version"]
    # an old-style roster request: now an override, outside directory versions
    duty = ru.api("POST", "/api/v1/roster", json={"operator": "cgs-1", "role": "cgs",
                                                  "status": "on-duty"})
    assert duty.status_code == 200, duty.text
    assert duty.json()["version"] == before
    assert duty.json()["override"]["operator"] == "cgs-1"
    assert duty.json()["override"]["unavailable"] is False
    not_held = ru.api("POST", "/api/v1/roster", json={"operator": "ccp-1", "role": "cgs",
                                                      "status": "on-duty"})
    assert not_held.status_code == 400
    assert "role: operator 'ccp-1' does not hold role 'cgs'" in not_held.json()["message"]
    assert ru.api("GET", "/api/v1/directory").json()["version"] == before
    assert ru.api("GET", "/api/v1/schedules/cgs/who").json()["holders"] == ["cgs-1"]
    ru.api("POST", "/api/v1/presence", json={"operator": "cgs-1"})

    def cgs_staffed() -> bool:
        rows = us.api("GET", "/api/v1/desks").json()["desks"]
        return any(d["role"] == "cgs" and d["staffed"] for d in rows)
    wait_until(cgs_staffed, 15, what="the principal's desk to be staffed")
    same = ru.api("PUT", "/api/v1/directory",
                  json={"toml": directory_toml("RU-GS", 200, 5000)})
    assert same.json() == {"version": before, "changed": False,  # the file is unchanged
                           "warnings": []}
    # and the override outlives any directory apply
    changed = ru.api("PUT", "/api/v1/directory", json={"toml": directory_toml(
        "RU-GS", 200, 5000).replace('staffed_within = "', 'staffed_within = "1', 1)})
    assert changed.json()["changed"] is True
    assert ru.api("GET", "/api/v1/schedules/cgs/who").json()["holders"] == ["cgs-1"]
    logged = ru.query("SELECT entry FROM log_entries WHERE kind = 'duty-override'")
    assert len(logged) == 1
    assert '"by":"admin"' in logged[0].entry.replace(" ", "")


def test_the_calls_event_stream_shows_every_step_live_and_resumes(
        us_ru: tuple[NodeProcess, NodeProcess]) -> None:
    from tests.integration.test_operator_api import EventReader

    us, ru = us_ru
    reader = EventReader(ru, path="/api/v1/calls-events", event_name="call")
    reader.connected.wait(10)
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "on the stream")

    def states() -> list[tuple[str, str | None]]:
        return [(e["event"]["state"], e["event"]["role"]) for e in reader.events
                if e["call"]["id"] == call_id]
    wait_until(lambda: ("ringing", "cgs") in states(), 30, what="ringing on the stream")
    assert states()[:2] == [("delivered", "cgs"), ("ringing", "cgs")]
    assert all(e["event"]["verified"] for e in reader.events)
    last = reader.ids[-1]
    reader.close()
    assert us.api("POST", f"/api/v1/calls/{call_id}/cancel").status_code == 200
    resumed = EventReader(ru, headers={"last-event-id": last},
                          path="/api/v1/calls-events", event_name="call")
    wait_until(lambda: any(e["event"]["state"] == "cancelled" for e in resumed.events), 30,
               what="the cancel after resuming")
    assert int(resumed.ids[0]) > int(last)  # nothing seen before is sent again
    resumed.close()
