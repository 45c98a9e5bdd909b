"""Authorization on real nodes, the instances beyond issue 11's reproductions (T17): a
console answer that renders a conversation named in a form field, and event streams
whose actor was fixed when they opened.

US-JS calls RU-GS twice from ``nmcc-do``: X to ``cgs`` (answered by ``cgs-1``) and Z to
``dcd`` (answered by ``dcd-1``); US writes one message into each. At RU ``dcd-1`` sees Z
and not X. Each test reads the streams on a thread and polls with a deadline.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.accounts.offline import add_operator
from hotline.authz.tokens import issue_token, revoke_token
from hotline.protocol.envelope import new_envelope_id
from hotline.protocol.keys import PartyKeys
from hotline.scenario import directory_toml
from tests.calls import apply_scenario, apply_toml, place, wait_for_desks, wait_for_state
from tests.nodes import NodeProcess, link, nodes_on, wait_until
from tests.peers import console_session, send_sealed

PASSWORD = "correct horse battery staple"


@dataclass
class Fed:
    us: NodeProcess
    ru: NodeProcess
    x: str
    z: str
    mx: str
    mz: str
    console: httpx.Client  # dcd-1's console session (a TOTP code logs in only once)
    ua_keys: PartyKeys
    ua_seq: int = 1

    def from_ua(self, type_: str, payload: dict[str, Any]) -> None:
        """UA-GS, linked to RU and holding its own keys, sends RU one envelope."""
        send_sealed(self.ru, "UA-GS", self.ua_keys, self.ua_seq, type_, payload)
        self.ua_seq += 1


def ru_directory(dcd1_role: str) -> str:
    """RU's scenario directory with ``dcd-1`` in ``dcd1_role``."""
    text = directory_toml("RU-GS", 1.0, 5000)
    for old, new in (('name = "Deconfliction desk officer"\nroles = ["dcd"]',
                      f'name = "Deconfliction desk officer"\nroles = ["{dcd1_role}"]'),
                     ('operator = "dcd-1"\nrole = "dcd"', f'operator = "dcd-1"\nrole = '
                                                         f'"{dcd1_role}"')):
        assert old in text
        text = text.replace(old, new)
    return text


def say(fed: Fed, conv: str, text: str) -> None:
    r = fed.us.api("POST", f"/api/v1/conversations/{conv}/messages",
                   json={"text": text, "as": "nmcc-do", "operator": "nmcc-1"})
    assert r.status_code == 201, r.text
    wait_until(lambda: fed.ru.query("SELECT id FROM conversation_messages WHERE text = :t",
                                    t=text), what=f"{text!r} at RU")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    base: Path = tmp_path_factory.mktemp("authz-streams")
    with nodes_on("sqlite", base) as make:
        us, ru, ua = make("US-JS"), make("RU-GS"), make("UA-GS")  # UA never runs
        link(us, ru)
        link(ru, ua)
        apply_scenario(us)
        apply_toml(ru, ru_directory("dcd"))
        secrets = {op: add_operator(ru.dir, op, PASSWORD).secret for op in ("cgs-1", "dcd-1")}
        us.start()
        ru.start()
        wait_for_desks(us, "RU-GS")
        x = place(us, "cgs@RU-GS", "nmcc-do", "X")
        z = place(us, "dcd@RU-GS", "nmcc-do", "Z")
        for call, role, op in ((x, "cgs", "cgs-1"), (z, "dcd", "dcd-1")):
            wait_for_state(ru, call, "ringing")
            r = ru.api("POST", f"/api/v1/calls/{call}/answer", json={"as": role,
                                                                     "operator": op})
            assert r.status_code == 200, r.text
            wait_for_state(us, call, "answered")
        f = Fed(us, ru, x, z, "", "", log_in(ru, "dcd-1", secrets["dcd-1"]),
                ua.private_keys())
        say(f, x, "secret in X")
        say(f, z, "secret in Z")
        f.mx = ru.query("SELECT id FROM conversation_messages WHERE text = 'secret in X'")[0][0]
        f.mz = ru.query("SELECT id FROM conversation_messages WHERE text = 'secret in Z'")[0][0]
        try:
            yield f
        finally:
            f.console.close()


def security_lines(node: NodeProcess) -> list[str]:
    return node.log_lines("hotline.security: refused")


def log_in(node: NodeProcess, operator: str, secret: str) -> httpx.Client:
    return console_session(node, operator, secret, PASSWORD)


def csrf(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/account").text)
    assert found
    return found.group(1)


@dataclass
class Stream:
    """An SSE stream read on a thread: its lines, and whether it has ended."""

    lines: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def text(self) -> str:
        return "\n".join(self.lines)


def open_stream(url: str, headers: dict[str, str]) -> Stream:
    stream = Stream()

    def read() -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=60.0) as r:
                for line in r.iter_lines():
                    stream.lines.append(line)
        except httpx.HTTPError as exc:
            stream.lines.append(f"!! {exc!r}")
        finally:
            stream.ended.set()

    threading.Thread(target=read, daemon=True).start()
    wait_until(lambda: ": connected" in stream.lines, what="the stream to connect")
    return stream


def test_console_receipt_does_not_render_a_conversation_it_may_not_see(fed: Fed) -> None:
    """dcd-1 gives a receipt for Z's message (its own conversation) but names X as the
    form's conversation: the htmx answer rendered X's messages. Now refused 404 as if
    X did not exist, with one security-log line, and no receipt given."""
    client = fed.console
    before = len(security_lines(fed.ru))
    r = client.post(f"/receipts/{fed.mz}", headers={"HX-Request": "true"},
                    data={"as": "dcd", "receipt": "read", "conversation": fed.x,
                          "csrf": csrf(client)})
    assert "secret in X" not in r.text
    assert r.status_code == 404, r.status_code
    lines = wait_until(lambda: security_lines(fed.ru)[before:] or None,
                       what="the refusal's line")
    assert len(lines) == 1, lines
    assert "operator dcd-1 (console)" in lines[0], lines
    assert fed.x in lines[0]
    assert fed.ru.query("SELECT COUNT(*) FROM message_receipts WHERE message_id = :m "
                        "AND kind = 'read'", m=fed.mz)[0][0] == 0
    # its own conversation, named rightly, still works
    r = client.post(f"/receipts/{fed.mz}", headers={"HX-Request": "true"},
                    data={"as": "dcd", "receipt": "read", "conversation": fed.z,
                          "csrf": csrf(client)})
    assert r.status_code == 200
    assert "secret in Z" in r.text


def test_a_revoked_tokens_open_stream_carries_nothing_more(fed: Fed) -> None:
    """dcd-1's token streams /calls-events; the token is revoked; US writes into Z: the
    stream ends without the new message, with one security-log line."""
    row, token = issue_token(fed.ru.dir, "dcd-1")
    stream = open_stream(fed.ru.url + "/api/v1/calls-events",
                         {"authorization": f"Bearer {token}"})
    wait_until(lambda: "secret in Z" in stream.text(), what="catching up: it may see Z")
    revoke_token(fed.ru.dir, row.id)
    before = len(security_lines(fed.ru))
    say(fed, fed.z, "after the revocation")
    assert stream.ended.wait(30), "the revoked token's stream is still open"
    assert "after the revocation" not in stream.text()
    lines = security_lines(fed.ru)[before:]
    assert len(lines) == 1, lines
    assert f"token:{row.id}" in lines[0], lines


def test_streams_follow_a_role_taken_away_mid_session(fed: Fed) -> None:
    """dcd-1 streams through its token and its console page; the directory moves it
    from ``dcd`` to ``cgs``. A new message in Z (no longer theirs) reaches neither
    stream, not even its id; one in X (now theirs) does."""
    _, token = issue_token(fed.ru.dir, "dcd-1")
    api = open_stream(fed.ru.url + "/api/v1/calls-events",
                      {"authorization": f"Bearer {token}"})
    cookie = str(fed.console.headers["Cookie"])
    console = open_stream(fed.ru.url + "/console/events", {"Cookie": cookie})
    try:
        apply_toml(fed.ru, ru_directory("cgs"))
        say(fed, fed.z, "Z after the move")
        say(fed, fed.x, "X after the move")
        wait_until(lambda: "X after the move" in api.text(), what="X's message (API)")
        wait_until(lambda: fed.x in console.text(), what="X's event (console)")
        assert "Z after the move" not in api.text()
        assert fed.z not in console.text()
    finally:
        apply_toml(fed.ru, ru_directory("dcd"))


def test_a_peer_message_reusing_another_messages_id_is_refused_and_logged(fed: Fed) -> None:
    """UA opens a conversation of its own with RU, then sends a message into it whose id
    is X's US message: it was dropped with no security-log line. Now: X's message is
    unchanged, nothing stored, and exactly one line names the peer and the id."""
    own = new_envelope_id()

    def message(message_id: str, text: str) -> dict[str, Any]:
        return {"conversation": own, "message": message_id, "role": "cinc",
                "operator": None, "text": text, "sent_at": 1, "topic": "UA line",
                "members": ["RU-GS", "UA-GS"]}

    fed.from_ua("conv.message", message(new_envelope_id(), "hello RU"))
    wait_until(lambda: fed.ru.query("SELECT id FROM conversations WHERE id = :c", c=own),
               what="UA's conversation at RU")
    before = len(security_lines(fed.ru))
    fed.from_ua("conv.message", message(fed.mx, "stolen id"))
    lines = wait_until(lambda: security_lines(fed.ru)[before:] or None, 10,
                       what="the refusal's line")
    assert len(lines) == 1, lines
    assert "peer UA-GS" in lines[0], lines
    assert fed.mx in lines[0], lines
    rows = fed.ru.query("SELECT conversation_id, party, text FROM conversation_messages "
                        "WHERE id = :m", m=fed.mx)
    assert [tuple(r) for r in rows] == [(fed.x, "US-JS", "secret in X")]
    assert fed.ru.query("SELECT COUNT(*) FROM conversation_messages WHERE "
                        "text = 'stolen id'")[0][0] == 0


def test_a_missing_administrator_token_file_refuses_only_the_administrator(fed: Fed) -> None:
    """A careless administrator removes DIR/operator.token: every API request answered
    500 (FileNotFoundError), operators' own tokens too. Now the old administrator token
    is refused 401 (one security-log line) and an operator's token still works."""
    path = fed.ru.dir / "operator.token"
    admin = fed.ru.token
    _, token = issue_token(fed.ru.dir, "dcd-1")
    hidden = path.with_name("operator.token.hidden")
    path.rename(hidden)
    try:
        before = len(security_lines(fed.ru))
        r = httpx.get(fed.ru.url + "/api/v1/status", headers={"authorization": f"Bearer {admin}"})
        assert r.status_code == 401, r.text
        r = httpx.get(fed.ru.url + f"/api/v1/conversations/{fed.z}",
                      headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        lines = security_lines(fed.ru)[before:]
        assert len(lines) == 1, lines
        assert "unauthenticated request GET /api/v1/status" in lines[0], lines
    finally:
        hidden.rename(path)
    assert fed.ru.api("GET", "/api/v1/status").status_code == 200


# Each is a linked peer's envelope whose effect must be refused: malformed, naming an
# id or a name no column holds (PostgreSQL's String(32) refused those with an error that
# reached no security log), or a call it has no part in.
_LONG = "r" * 40
PEER_REFUSALS: dict[str, tuple[str, Any]] = {
    "call.state without a statement": ("call.state", {"other": 1}),
    "call.state with a forged statement": ("call.state", {"statement": "{}"}),
    "call.cancel without a call id": ("call.cancel", {"call": 7}),
    "call.cancel naming no id": ("call.cancel", {"call": "x" * 40}),
    "conv.receipt without a statement": ("conv.receipt", {"statement": 5}),
    "conv.message with an over-long conversation id": ("conv.message", {
        "conversation": "c" * 40, "message": "0" * 32, "role": "cinc", "operator": None,
        "text": "t", "sent_at": 1, "topic": "t", "members": ["RU-GS", "UA-GS"]}),
    "conv.message with an over-long role": ("conv.message", {
        "conversation": "1" * 32, "message": "2" * 32, "role": _LONG, "operator": None,
        "text": "t", "sent_at": 1, "topic": "t", "members": ["RU-GS", "UA-GS"]}),
    "conv.invite naming no id": ("conv.invite", {
        "conversation": "short", "topic": "t", "members": ["RU-GS", "UA-GS"]}),
    "desks without desks": ("desks", {"at": "yesterday"}),
}
_STORED = ("call_events", "conversations", "conversation_messages", "message_receipts",
           "peer_desks", "evidence")


@pytest.mark.parametrize("case", sorted(PEER_REFUSALS))
def test_every_refused_peer_effect_leaves_one_line_and_stores_nothing(fed: Fed,
                                                                      case: str) -> None:
    """A linked peer's envelope is received (it is validly sealed), but what it asks is
    refused: exactly one security-log line names it, and no table it could touch
    changes. Before, these were dropped silently or failed with no security line."""
    type_, payload = PEER_REFUSALS[case]

    def stored() -> dict[str, int]:
        return {t: fed.ru.query(f"SELECT COUNT(*) FROM {t}")[0][0]  # noqa: S608 (fixed names)
                for t in _STORED}

    before_rows, before = stored(), len(fed.ru.log_lines("hotline.security:"))
    fed.from_ua(type_, payload)
    lines = wait_until(lambda: fed.ru.log_lines("hotline.security:")[before:] or None, 10,
                       what="the refusal's line")
    released = wait_until(lambda: fed.ru.query(
        "SELECT COUNT(*) FROM inbound WHERE peer = 'UA-GS' AND released_at IS NOT NULL"
        )[0][0] >= fed.ua_seq - 1 or None, 10, what="the envelope's release")
    assert released
    lines = fed.ru.log_lines("hotline.security:")[before:]
    assert len(lines) == 1, lines
    assert "UA-GS" in lines[0], lines
    assert type_ in lines[0], lines
    assert stored() == before_rows
