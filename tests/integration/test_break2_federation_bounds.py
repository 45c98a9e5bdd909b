"""Second breaker, bounded input from a linked peer (issue 11, item 6): envelopes that
UA-GS really signed, whose fields are out of what the store holds, are refused the same
way on SQLite and PostgreSQL: one ``hotline.security`` line naming the envelope, a clean
reason (not "could not be applied" with a database error), and nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hotline.protocol.envelope import new_envelope_id
from hotline.protocol.keys import PartyKeys
from tests.calls import apply_scenario
from tests.nodes import NodeProcess, link, nodes_on, wait_until
from tests.peers import send_sealed


@dataclass
class Peer:
    ru: NodeProcess
    ua_keys: PartyKeys
    seq: int = 1

    def send(self, type_: str, payload: dict[str, Any]) -> str:
        """UA-GS, linked to RU, sends RU one validly signed envelope; its id."""
        sent = send_sealed(self.ru, "UA-GS", self.ua_keys, self.seq, type_, payload)
        self.seq += 1
        return sent


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def peer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Peer]:
    base: Path = tmp_path_factory.mktemp(f"break2-{request.param}")
    with nodes_on(request.param, base) as make:
        ru, ua = make("RU-GS"), make("UA-GS")  # UA never runs: its keys sign
        link(ru, ua)
        apply_scenario(ru)
        ru.start()
        yield Peer(ru, ua.private_keys())


CONV = "c0ffee" + "0" * 26
#: 33 characters: a pattern ending in "$" matches before a final newline, so .match()
#: took it (stored on SQLite, a DataError on PostgreSQL's String(32)). NUL cannot be
#: tried here: canonical JSON refuses it before any handler sees the payload.
LONG_ROLE = "a" * 32 + "\n"


def message(**change: Any) -> dict[str, Any]:
    body = {"conversation": CONV, "message": new_envelope_id(), "role": "ua-do",
            "operator": None, "text": "hello", "sent_at": 1, "topic": "t",
            "members": ["RU-GS", "UA-GS"]}
    return {**body, **change}


def place(**change: Any) -> dict[str, Any]:
    body = {"call": new_envelope_id(), "caller_role": "ua-do", "callee_role": "cgs",
            "reason": None, "placed_at": 1, "budget_ms": None, "parent": None}
    return {**body, **change}


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "caller role of 33 characters": ("call.place", place(caller_role=LONG_ROLE)),
    "call id with a final newline": ("call.place", place(call="0" * 32 + "\n")),
    "message role of 33 characters": ("conv.message", message(role=LONG_ROLE)),
    "desk role of 33 characters": ("desks", {"at": 1, "desks": [
        {"role": LONG_ROLE, "titles": {"en": "x"}, "staffed": True, "callers": []}]}),
}

STORED = ("SELECT (SELECT COUNT(*) FROM conversation_messages) + "
          "(SELECT COUNT(*) FROM conversations) + (SELECT COUNT(*) FROM calls) + "
          "(SELECT COUNT(*) FROM peer_desks)")


@pytest.mark.parametrize("case", list(CASES))
def test_an_out_of_range_field_from_a_linked_peer_is_refused_alike_on_both_stores(
        peer: Peer, case: str) -> None:
    type_, payload = CASES[case]
    ru = peer.ru
    before = len(ru.log_lines("hotline.security: refused"))
    stored = ru.query(STORED)[0][0]
    envelope = peer.send(type_, payload)
    wait_until(lambda: len(ru.log_lines("hotline.security: refused")) > before, 15,
               what="the refusal's line")
    lines = [line for line in ru.log_lines("hotline.security: refused")][before:]
    assert len(lines) == 1, lines
    assert envelope in lines[0]
    assert "could not be applied" not in lines[0], lines[0]  # a clean reason, not a crash
    assert ru.query(STORED)[0][0] == stored
