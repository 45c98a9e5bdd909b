"""Reads that list or stream a node's traffic leave out what the reader may not see
(THREATS T17, docs/security.md "Lists ... and event streams leave out what the actor may
not see").

US-JS calls ``cgs@RU-GS`` from ``nmcc-do``; ``cgs-1`` answers at RU and US writes in the
call's conversation. At RU, ``dcd-1`` holds a role with no part in that call: the inbox
(``GET /api/v1/inbox``) and its stream (``GET /api/v1/events``) must not hand that
operator the call's ``call.place`` or the conversation's ``conv.message`` — their
reason and text — while ``cgs-1`` and the administrator still get them, and what people
sent (``message``) stays everyone's. Nor may the console's audit page list the log's
entries about that call (its id, who signed which state) to ``dcd-1``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.accounts.offline import add_operator
from hotline.authz.tokens import issue_token
from tests.calls import place, us_and_ru, wait_for_state
from tests.nodes import NodeProcess, nodes_on, wait_until
from tests.peers import console_session

SECRET_REASON = "reason only cgs may read"
SECRET_TEXT = "conversation text only cgs may read"
EVERYONE = "a message for the whole party"


@dataclass
class Setup:
    us: NodeProcess
    ru: NodeProcess
    call: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base: Path = tmp_path_factory.mktemp("authz-reads")
    with nodes_on("sqlite", base) as make:
        us, ru = us_and_ru(make)
        call = place(us, "cgs@RU-GS", "nmcc-do", SECRET_REASON)
        wait_for_state(ru, call, "ringing")
        r = ru.api("POST", f"/api/v1/calls/{call}/answer",
                   json={"as": "cgs", "operator": "cgs-1"})
        assert r.status_code == 200, r.text
        wait_for_state(us, call, "answered")
        r = us.api("POST", f"/api/v1/conversations/{call}/messages",
                   json={"text": SECRET_TEXT, "as": "nmcc-do", "operator": "nmcc-1"})
        assert r.status_code == 201, r.text
        us.send("RU-GS", [EVERYONE])  # released after the conversation's message
        wait_until(lambda: [m for m in ru.inbox() if m["text"] == EVERYONE] or None,
                   what="the plain message at RU")
        tokens = {op: issue_token(ru.dir, op)[1] for op in ("cgs-1", "dcd-1")}
        tokens["admin"] = ru.token
        yield Setup(us, ru, call, tokens)


def _inbox(s: Setup, actor: str) -> list[dict[str, Any]]:
    r = httpx.get(s.ru.url + "/api/v1/inbox", params={"kind": "all", "limit": 1000},
                  headers={"authorization": f"Bearer {s.tokens[actor]}"}, timeout=30.0)
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


def _streamed(s: Setup, actor: str) -> list[dict[str, Any]]:
    """What ``/api/v1/events`` sends ``actor`` from the start up to the plain message
    (released last)."""
    got: list[dict[str, Any]] = []
    with httpx.stream("GET", s.ru.url + "/api/v1/events", params={"after": 0},
                      headers={"authorization": f"Bearer {s.tokens[actor]}"},
                      timeout=30.0) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[len("data:"):])
            got.append(message)
            if message["text"] == EVERYONE:
                return got
    raise AssertionError(f"the stream ended before the plain message: {got}")


def _leaks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages
            if SECRET_REASON in json.dumps(m) or SECRET_TEXT in json.dumps(m)]


def _types(messages: list[dict[str, Any]]) -> set[str]:
    return {m["type"] for m in messages}


@pytest.mark.parametrize("read", [_inbox, _streamed], ids=["inbox", "events"])
def test_an_operator_without_a_part_reads_none_of_the_call(setup: Setup, read: Any) -> None:
    seen = read(setup, "dcd-1")
    assert _leaks(seen) == [], seen
    assert EVERYONE in [m["text"] for m in seen]
    assert not {"call.place", "conv.message"} & _types(seen), seen


@pytest.mark.parametrize("read", [_inbox, _streamed], ids=["inbox", "events"])
@pytest.mark.parametrize("actor", ["cgs-1", "admin"])
def test_who_has_a_part_still_reads_it(setup: Setup, read: Any, actor: str) -> None:
    seen = read(setup, actor)
    assert {"call.place", "conv.message"} <= _types(seen), seen
    assert len(_leaks(seen)) == 2, seen
    assert EVERYONE in [m["text"] for m in seen]


PASSWORD = "correct horse battery staple"


def test_the_audit_page_names_a_call_only_to_who_may_read_it(setup: Setup) -> None:
    ru, call = setup.ru, setup.call
    about = int(ru.query("SELECT COUNT(*) FROM log_entries WHERE subject = :c",
                         c=call)[0][0])
    assert about > 0
    seen: dict[str, tuple[str, str]] = {}
    for op in ("cgs-1", "dcd-1"):
        client = console_session(ru, op, add_operator(ru.dir, op, PASSWORD).secret,
                                 PASSWORD)
        try:
            everything = client.get("/audit")
            filtered = client.get("/audit", params={"call": call})
        finally:
            client.close()
        assert everything.status_code == filtered.status_code == 200
        seen[op] = (everything.text, filtered.text)
    # cgs-1 answered it: the entries are there, by the filter and on the first page
    assert call in seen["cgs-1"][0]
    assert seen["cgs-1"][1].count(f'>{call}<') == min(about, 50)
    # dcd-1: not a word of it, as for a call that does not exist; other entries stay
    assert call not in seen["dcd-1"][0]
    assert call not in seen["dcd-1"][1].rsplit("</form>", 1)[-1]
    assert 'class="empty"' in seen["dcd-1"][1]
    assert 'data-kind="login"' in seen["dcd-1"][0]
