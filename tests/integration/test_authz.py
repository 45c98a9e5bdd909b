"""Object-level authorization on real nodes (THREATS T17, T18): a table of actors x
objects x actions, through the console and the operator API alike, and the federation
handlers fed envelopes signed by a linked party that is not a member.

US-JS calls RU-GS twice from ``nmcc-do``: call X, answered at RU by ``cgs-1`` (its
conversation holds a US message M), and call Y, left ringing ``cgs`` at RU. At RU,
``cgs-1`` holds the callee role, ``dcd-1`` an unrelated one, and ``cgs-2`` held ``cgs``
while X rang and lost it afterwards. UA-GS is linked to US and RU but never runs: the
test holds its keys and signs what it sends. Every allowed request succeeds (or meets a
state rule, 409); every refused one answers 404 (may not see it) or 403 (may see it,
may not do that) and leaves exactly one security-log line naming actor, object, action.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.accounts.offline import add_operator
from hotline.authz.tokens import issue_token
from hotline.protocol.envelope import new_envelope_id
from hotline.protocol.keys import PartyKeys
from hotline.protocol.statement import sign_message_receipt
from hotline.scenario import directory_toml
from tests.calls import apply_scenario, apply_toml, place, wait_for_desks, wait_for_state
from tests.nodes import NodeProcess, link, nodes_on, wait_until
from tests.peers import console_session, send_sealed

PASSWORD = "correct horse battery staple"


def ru_directory(cgs2_role: str) -> str:
    """RU's scenario directory (escalation steps of two real minutes, so only ``cgs`` is
    rung while the test runs) with one more operator, ``cgs-2``, in ``cgs2_role``."""
    return directory_toml("RU-GS", 1.0, 5000) + (
        '\n[operators."cgs-2"]\nname = "Second chief"\n'
        f'roles = ["{cgs2_role}"]\nlanguage = "ru"\n')


@dataclass
class Fed:
    us: NodeProcess
    ru: NodeProcess
    ua_keys: PartyKeys
    x: str  # answered call and its conversation
    y: str  # ringing call
    message: str  # a US message in conversation X
    ua_seq: int = 1

    def from_ua(self, type_: str, payload: dict[str, Any]) -> None:
        """UA-GS sends one envelope to US (signed with UA's own key: a linked party)."""
        send_sealed(self.us, "UA-GS", self.ua_keys, self.ua_seq, type_, payload)
        self.ua_seq += 1


def _log_in(node: NodeProcess, operator: str, secret: str) -> httpx.Client:
    return console_session(node, operator, secret, PASSWORD)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    base: Path = tmp_path_factory.mktemp("authz")
    with nodes_on("sqlite", base) as make:
        us, ru, ua = make("US-JS"), make("RU-GS"), make("UA-GS")
        link(us, ru)
        link(us, ua)
        link(ru, ua)
        apply_scenario(us)
        apply_toml(ru, ru_directory("cgs"))
        us.start()
        ru.start()
        wait_for_desks(us, "RU-GS")
        x = place(us, "cgs@RU-GS", "nmcc-do", "authz table")
        y = place(us, "cgs@RU-GS", "nmcc-do", "left ringing")
        wait_for_state(ru, x, "ringing")
        wait_for_state(ru, y, "ringing")
        r = ru.api("POST", f"/api/v1/calls/{x}/answer", json={"as": "cgs",
                                                              "operator": "cgs-1"})
        assert r.status_code == 200, r.text
        wait_for_state(us, x, "answered")
        r = us.api("POST", f"/api/v1/conversations/{x}/messages",
                   json={"text": "US message", "as": "nmcc-do", "operator": "nmcc-1"})
        assert r.status_code == 201, r.text
        message = r.json()["id"]
        wait_until(lambda: ru.query("SELECT id FROM conversation_messages WHERE id = :m",
                                    m=message), what="M at RU")
        yield Fed(us, ru, ua.private_keys(), x, y, message)


def security_lines(node: NodeProcess) -> list[str]:
    return node.log_lines("hotline.security: refused")


def expect_refusal(node: NodeProcess, before: int, *needles: str) -> None:
    """Exactly one new refusal line, naming each of ``needles``."""
    lines = wait_until(lambda: security_lines(node)[before:] or None, 10,
                       what="the refusal's security-log line")
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# -- T18: the federation handlers ---------------------------------------------------------
def test_a_linked_non_member_cannot_file_receipts_or_speak(fed: Fed) -> None:
    """UA-GS, linked to US but not a member of the US-RU conversation: a receipt it signs
    for a US message there, a receipt for a message that does not exist, a message and an
    invitation into the conversation — each refused, stored nowhere, logged once. A
    conversation of its own with US it may open; a receipt there must still name a
    message of that conversation."""
    us = fed.us

    def receipt(message: str, conversation: str) -> dict[str, Any]:
        stmt = sign_message_receipt(message=message, conversation=conversation,
                                    author="US-JS", signer="UA-GS", receipt="read",
                                    at=int(time.time() * 1000), keys=fed.ua_keys,
                                    role="cinc")
        return {"statement": stmt.raw}

    cases = [
        ("conv.receipt", receipt(fed.message, fed.x), f"receipt message {fed.message}"),
        ("conv.receipt", receipt("f" * 32, fed.x), f"receipt message {'f' * 32}"),
        ("conv.message", {"conversation": fed.x, "message": new_envelope_id(), "role": "cinc",
                          "operator": None, "text": "let me in", "sent_at": 1,
                          "topic": "t", "members": ["US-JS", "RU-GS", "UA-GS"]},
         f"say conversation {fed.x}"),
        ("conv.invite", {"conversation": fed.x, "topic": "t",
                         "members": ["US-JS", "RU-GS", "UA-GS"]},
         f"add-member conversation {fed.x}"),
        # the id of a US call with RU, before and whatever its conversation: not UA's
        ("conv.message", {"conversation": fed.y, "message": new_envelope_id(), "role": "cinc",
                          "operator": None, "text": "hijack", "sent_at": 1,
                          "topic": "t", "members": ["US-JS", "UA-GS"]},
         f"open conversation {fed.y}"),
    ]
    for type_, payload, needle in cases:
        before = len(security_lines(us))
        fed.from_ua(type_, payload)
        expect_refusal(us, before, "peer UA-GS", needle)
    assert us.query("SELECT COUNT(*) FROM message_receipts WHERE party = 'UA-GS'")[0][0] == 0
    assert us.query("SELECT COUNT(*) FROM log_entries WHERE kind = 'message-receipt' "
                    "AND entry LIKE '%UA-GS%'")[0][0] == 0
    conv = us.api("GET", f"/api/v1/conversations/{fed.x}").json()
    assert sorted(conv["members"]) == ["RU-GS", "US-JS"]
    assert [m["text"] for m in conv["messages"]] == ["US message"]
    assert us.query("SELECT COUNT(*) FROM conversations WHERE id = :y", y=fed.y)[0][0] == 0

    # a conversation of UA's own with US: opened; receipts there only for its messages
    own = new_envelope_id()
    fed.from_ua("conv.message", {"conversation": own, "message": new_envelope_id(),
                                 "role": "cinc", "operator": None, "text": "hello US",
                                 "sent_at": 1, "topic": "UA line",
                                 "members": ["UA-GS", "US-JS"]})
    wait_until(lambda: us.query("SELECT id FROM conversations WHERE id = :c", c=own),
               what="UA's own conversation at US")
    for message in (fed.message, "e" * 32):  # M is in another conversation; e… is nowhere
        before = len(security_lines(us))
        fed.from_ua("conv.receipt", receipt(message, own))
        expect_refusal(us, before, "peer UA-GS", f"receipt message {message}")
    assert us.query("SELECT COUNT(*) FROM message_receipts WHERE party = 'UA-GS'")[0][0] == 0


def test_a_member_peer_files_receipts(fed: Fed) -> None:
    """RU, a member, gives a person's receipt for M: US stores it, verified."""
    r = fed.ru.api("POST", f"/api/v1/messages/{fed.message}/receipts",
                   json={"receipt": "acknowledged", "as": "cgs", "operator": "cgs-1"})
    assert r.status_code == 201, r.text

    def stored() -> Any:
        conv = fed.us.api("GET", f"/api/v1/conversations/{fed.x}").json()
        return [x for x in conv["messages"][0]["receipts"]
                if x["party"] == "RU-GS" and x["receipt"] == "acknowledged"]
    (got,) = wait_until(stored, what="RU's receipt at US")
    assert got["verified"] is True


# -- T17: operators, through the console and the API --------------------------------------
OK = "ok"


def _api_cases(f: Fed) -> list[tuple[str, str, str, dict[str, Any] | None, Any]]:
    """(actor, method, path, body, expected) at RU; expected OK, 403 or 404."""
    x, y, m = f.x, f.y, f.message
    say = {"text": "from the table", "as": "cgs"}
    rows: list[tuple[str, str, str, dict[str, Any] | None, Any]] = []
    for actor, sees in (("cgs-1", True), ("dcd-1", False), ("cgs-2", False),
                        ("admin", True)):
        refused = OK if sees else 404
        rows += [
            (actor, "GET", f"/api/v1/calls/{x}", None, refused),
            (actor, "GET", f"/api/v1/conversations/{x}", None, refused),
            (actor, "POST", f"/api/v1/conversations/{x}/messages",
             {**say, "as": "cgs" if actor != "dcd-1" else "dcd"},
             refused if actor != "cgs-2" else 403),  # cgs-2 names a role it lost: 403
            (actor, "POST", f"/api/v1/messages/{m}/receipts",
             {"receipt": "read", "as": "cgs" if actor != "dcd-1" else "dcd"},
             refused if actor != "cgs-2" else 403),
            (actor, "POST", f"/api/v1/calls/{x}/cancel", None,  # incoming: not ours
             None if actor == "admin" else (403 if sees else 404)),
            (actor, "POST", f"/api/v1/calls/{y}/decline",
             {"as": "cgs" if actor != "dcd-1" else "dcd", "reason": "no"},
             # admin is let through; the decline would end Y, so it is left to answer
             None if actor == "admin" else (OK if sees else
                                            (403 if actor == "cgs-2" else 404))),
        ]
    # a request that names another operator, the admin-only writes, overrides
    rows += [
        ("cgs-1", "POST", f"/api/v1/conversations/{x}/messages",
         {**say, "operator": "dcd-1"}, 403),
        ("cgs-1", "PUT", "/api/v1/directory", {"toml": "x = 1"}, 403),
        # an override: an operator only for itself, in a role it holds
        ("cgs-1", "POST", "/api/v1/roster",
         {"operator": "dcd-1", "role": "dcd", "status": "on-duty"}, 403),
        ("cgs-1", "POST", "/api/v1/roster",
         {"operator": "cgs-1", "role": "dcd", "status": "on-duty"}, 403),
        ("cgs-2", "POST", "/api/v1/roster",
         {"operator": "cgs-2", "role": "cgs", "status": "on-duty"}, 403),  # a lost role
        ("cgs-1", "POST", "/api/v1/roster",
         {"operator": "cgs-1", "role": "cgs", "status": "unavailable",
          "from_ms": 4_000_000_000_000, "until_ms": 4_000_000_000_001}, OK),
        ("dcd-1", "POST", f"/api/v1/conversations/{x}/members", {"party": "UA-GS"}, 404),
        ("cgs-1", "POST", f"/api/v1/calls/{y}/answer", {"as": "cgs"}, OK),
    ]
    return [r for r in rows if r[4] is not None and not (r[0] == "cgs-1" and "decline" in r[2])]


def test_operator_api_table(fed: Fed) -> None:
    ru = fed.ru
    apply_toml(ru, ru_directory("dcd"))  # cgs-2 lost cgs after X was answered
    tokens = {op: issue_token(ru.dir, op)[1] for op in ("cgs-1", "dcd-1", "cgs-2")}
    tokens["admin"] = ru.token
    for actor, method, path, body, expected in _api_cases(fed):
        before = len(security_lines(ru))
        r = httpx.request(method, ru.url + path, json=body, timeout=30.0,
                          headers={"authorization": f"Bearer {tokens[actor]}"})
        where = f"{actor} {method} {path} {body}"
        if expected == OK:
            assert r.status_code in (200, 201, 204, 409), (where, r.text)
            assert security_lines(ru)[before:] == [], where
        else:
            assert r.status_code == expected, (where, r.status_code, r.text)
            label = "admin" if actor == "admin" else f"operator {actor} (token:"
            expect_refusal(ru, before, label)
    # an operator's override, not over the past: who held a role then is the record (the
    # console refuses the same); one refusal line, nothing stored
    before = len(security_lines(ru))
    stored = len(ru.query("SELECT id FROM schedule_overrides"))
    r = httpx.post(ru.url + "/api/v1/roster", timeout=30.0, json={
        "operator": "cgs-1", "role": "cgs", "status": "unavailable",
        "from_ms": 1_000_000_000_000, "until_ms": 1_000_000_000_001},
        headers={"authorization": f"Bearer {tokens['cgs-1']}"})
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("until_ms: is in the past"), r.text
    expect_refusal(ru, before, "until_ms")
    assert len(ru.query("SELECT id FROM schedule_overrides")) == stored
    # lists show only what the asker may see
    for actor, sees in (("cgs-1", True), ("dcd-1", False), ("cgs-2", False)):
        auth = {"authorization": f"Bearer {tokens[actor]}"}
        calls = httpx.get(ru.url + "/api/v1/calls", headers=auth).json()["calls"]
        convs = httpx.get(ru.url + "/api/v1/conversations", headers=auth).json()
        assert (fed.x in [c["id"] for c in calls]) is sees, actor
        assert (fed.x in [c["id"] for c in convs["conversations"]]) is sees, actor


def test_console_table(fed: Fed) -> None:
    """The same rules through the console: dcd-1 (the T17 reproduction) and cgs-2, whose
    open session loses X when the directory takes cgs from it."""
    ru = fed.ru
    apply_toml(ru, ru_directory("cgs"))
    secrets = {op: add_operator(ru.dir, op, PASSWORD).secret
               for op in ("cgs-1", "dcd-1", "cgs-2")}
    clients = {op: _log_in(ru, op, secret) for op, secret in secrets.items()}
    try:
        assert clients["cgs-2"].get(f"/conversations/{fed.x}").status_code == 200
        apply_toml(ru, ru_directory("dcd"))
        x, m = fed.x, fed.message

        def csrf(client: httpx.Client) -> str:
            found = re.search(r'name="csrf" value="([^"]+)"', client.get("/account").text)
            assert found
            return found.group(1)

        rows: list[tuple[str, str, str, dict[str, str], Any]] = []
        for actor, role, sees in (("cgs-1", "cgs", True), ("dcd-1", "dcd", False),
                                  ("cgs-2", "dcd", False)):
            expect = OK if sees else 404
            rows += [
                (actor, "GET", f"/conversations/{x}", {}, expect),
                (actor, "GET", f"/conversations/{x}/messages", {}, expect),
                (actor, "POST", f"/conversations/{x}/say", {"as": role, "text": "hi"}, expect),
                (actor, "POST", f"/receipts/{m}",
                 {"as": role, "receipt": "read", "conversation": x}, expect),
                (actor, "POST", f"/board/calls/{x}/cancel", {}, 403 if sees else 404),
                (actor, "POST", f"/alarm/{fed.y}/decline", {"as": role, "reason": "no"},
                 409 if sees else 404),  # Y was answered in the API table
            ]
        rows += [
            ("dcd-1", "POST", f"/conversations/{x}/say", {"as": "cgs", "text": "hi"}, 403),
            ("dcd-1", "POST", f"/conversations/{x}/members", {"as": "dcd", "party": "UA-GS"},
             404),
            ("cgs-2", "POST", f"/conversations/{x}/say", {"as": "cgs", "text": "hi"}, 403),
        ]
        for actor, method, path, form, expected in rows:
            client = clients[actor]
            before = len(security_lines(ru))
            if method == "GET":
                r = client.get(path)
            else:
                r = client.post(path, data={**form, "csrf": csrf(client)})
            where = f"console {actor} {method} {path} {form}"
            if expected == OK:
                assert r.status_code in (200, 303), (where, r.status_code)
                assert security_lines(ru)[before:] == [], where
            elif expected == 409:
                assert r.status_code == 409, (where, r.status_code)
            else:
                assert r.status_code == expected, (where, r.status_code)
                assert "US message" not in r.text
                expect_refusal(ru, before, f"operator {actor} (console)")
        page = clients["dcd-1"].get("/conversations")
        assert fed.x not in page.text
    finally:
        for client in clients.values():
            client.close()
    texts = [msg["text"] for msg in
             ru.api("GET", f"/api/v1/conversations/{fed.x}").json()["messages"]]
    assert "let me in" not in texts
    assert all(t in ("US message", "from the table", "hi") for t in texts)
