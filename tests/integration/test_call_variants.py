"""The scenario's variants: callee node down, partition mid-conversation, crash while
ringing. Real node processes; outages are real (stopped processes, a cut TCP proxy)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from hotline.scenario import directory_toml
from tests.calls import (
    apply_scenario,
    apply_toml,
    get_call,
    place,
    ringing_roles,
    wait_for_desks,
    wait_for_event,
    wait_for_state,
)
from tests.faultproxy import FaultProxy
from tests.nodes import NodeProcess, free_port, link, wait_until

Make = Callable[..., NodeProcess]


@pytest.mark.parametrize("late", ["deliver", "expire"])
def test_callee_node_down_makes_the_call_undeliverable_then_the_link_policy_decides(
        make_sqlite_node: Make, late: str) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us_toml = directory_toml("US-JS", 200, deliver_within_ms=1500)
    apply_toml(us, us_toml.replace('late = "deliver"', f'late = "{late}"'))
    apply_scenario(ru)
    us.start()  # RU's node is down

    call_id = place(us, "cgs@RU-GS", "nmcc-do", "missile impact")
    call = wait_for_state(us, call_id, "undeliverable")
    undeliverable = [e for e in call["history"] if e["state"] == "undeliverable"]
    assert len(undeliverable) == 1
    assert undeliverable[0]["signed_by"] == "US-JS"
    assert undeliverable[0]["verified"]
    fallback = [e["reason"] for e in call["history"] if e["state"] == "fallback"]
    assert any("calling dcd@RU-GS instead" in r for r in fallback), fallback
    assert any("alerted our cjcs" in r for r in fallback), fallback
    assert any("cannot inform PL-GS: no link" in r for r in fallback), fallback
    # delivery keeps trying: the call envelope is still queued, not dropped
    assert us.peer_status("RU-GS")["queued"] >= 2

    ru.start()
    if late == "deliver":
        call = wait_for_event(us, call_id, "ringing", "cgs", timeout=60)
        states = [e["state"] for e in call["history"]]
        assert states.index("undeliverable") < states.index("delivered")
        assert get_call(ru, call_id)["state"] == "ringing"  # type: ignore[index]
    else:
        call = wait_for_state(us, call_id, "expired", timeout=60)
        assert "ringing" not in [e["state"] for e in call["history"]]
        assert get_call(ru, call_id)["state"] == "expired"  # type: ignore[index]
    # both nodes hold the same statements from RU-GS
    ours = [e for e in call["history"] if e["signed_by"] == "RU-GS"]
    theirs = [e for e in get_call(ru, call_id)["history"]  # type: ignore[index]
              if e["signed_by"] == "RU-GS"]
    assert ours == theirs[:len(ours)]


def test_kill_9_of_the_callee_while_ringing_resumes_where_the_deadlines_say(
        make_sqlite_node: Make) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    speed = 60.0  # steps of 2 s, 2 s, then every 1 s
    apply_scenario(us, speed)
    apply_scenario(ru, speed)
    us.start()
    ru.start()
    wait_for_desks(us, "RU-GS")
    call_id = place(us, "cgs@RU-GS", "nmcc-do")
    wait_for_event(ru, call_id, "ringing", "cgs")
    ru.kill9()
    # stay down past the deputy's deadline: that ring must still happen, once, on restart
    due = ru.query("SELECT due_at FROM timers WHERE key = :k", k=f"{call_id}:ring:1")[0][0]
    wait_until(lambda: time.time() * 1000 > due + 1000, 10, what="the deputy's deadline")
    ru.start()
    call = wait_for_event(us, call_id, "ringing", "ccp-do", timeout=30)
    ru.api("POST", f"/api/v1/calls/{call_id}/answer", json={"as": "ccp-do"})
    call = wait_for_state(us, call_id, "answered")
    rings = ringing_roles(call)
    assert rings[:3] == ["cgs", "cgs-1d", "ccp-do"], rings
    assert rings.count("cgs") == 1
    assert rings.count("cgs-1d") == 1
    fired = ru.query("SELECT key, due_at, fired_at FROM timers WHERE call_id = :c "
                     "AND outcome = 'fired' ORDER BY due_at", c=call_id)
    keys = [row[0] for row in fired]
    assert len(keys) == len(set(keys))
    deputy = next(row for row in fired if row[0] == f"{call_id}:ring:1")
    assert deputy[2] > deputy[1], "the deputy's ring fired after the outage, not before"


def _say(node: NodeProcess, conv: str, text: str, as_role: str) -> dict[str, Any]:
    response = node.api("POST", f"/api/v1/conversations/{conv}/messages",
                        json={"text": text, "as": as_role})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _texts_from(node: NodeProcess, conv: str, party: str) -> list[str]:
    body = node.api("GET", f"/api/v1/conversations/{conv}").json()
    return [m["text"] for m in body["messages"] if m["party"] == party]


def test_partition_mid_conversation_delivers_everything_once_in_order_after_healing(
        make_sqlite_node: Make) -> None:
    us_port, ru_port = free_port(), free_port()
    to_us, to_ru = FaultProxy(us_port), FaultProxy(ru_port)
    try:
        us = make_sqlite_node("US-JS", endpoints=[to_us.url], port=us_port)
        ru = make_sqlite_node("RU-GS", endpoints=[to_ru.url], port=ru_port)
        link(us, ru)
        apply_scenario(us)
        apply_scenario(ru)
        us.start()
        ru.start()
        call_id = place(us, "ccp-do@RU-GS", "nmcc-do")
        wait_for_event(ru, call_id, "ringing", "ccp-do")
        ru.api("POST", f"/api/v1/calls/{call_id}/answer", json={"as": "ccp-do"})
        wait_for_state(us, call_id, "answered")
        _say(us, call_id, "before the cut", "nmcc-do")
        wait_until(lambda: _texts_from(ru, call_id, "US-JS") == ["before the cut"], 30,
                   what="the first message")

        to_us.partition()
        to_ru.partition()
        for n in range(5):
            _say(us, call_id, f"us {n}", "nmcc-do")
            _say(ru, call_id, f"ru {n}", "ccp-do")
        assert _texts_from(ru, call_id, "US-JS") == ["before the cut"]
        to_us.heal()
        to_ru.heal()

        expected_us = ["before the cut"] + [f"us {n}" for n in range(5)]
        wait_until(lambda: _texts_from(ru, call_id, "US-JS") == expected_us, 60,
                   what="US's messages at RU after healing")
        wait_until(lambda: _texts_from(us, call_id, "RU-GS") == [f"ru {n}" for n in range(5)],
                   60, what="RU's messages at US after healing")
        # each message got exactly one signed 'delivered' receipt back
        conv = us.api("GET", f"/api/v1/conversations/{call_id}").json()
        ours = [m for m in conv["messages"] if m["party"] == "US-JS"]
        wait_until(lambda: all(
            [r["receipt"] for r in m["receipts"]] == ["delivered"]
            for m in us.api("GET", f"/api/v1/conversations/{call_id}").json()["messages"]
            if m["party"] == "US-JS"), 30, what="delivered receipts")
        assert len(ours) == 6
    finally:
        to_us.close()
        to_ru.close()
