"""Calls to roles across real nodes: the scenario's call and its variants."""

from __future__ import annotations

from collections.abc import Callable

from tests.calls import (
    get_call,
    place,
    ringing_roles,
    us_and_ru,
    wait_for_event,
    wait_for_state,
)
from tests.nodes import NodeProcess

Make = Callable[[str], NodeProcess]


def callee_history(call: dict[str, object], signer: str) -> list[dict[str, object]]:
    return [e for e in call["history"] if e["signed_by"] == signer]  # type: ignore[attr-defined,index]


def test_unanswered_principal_and_deputy_then_duty_officer_answers(make_node: Make) -> None:
    us, ru = us_and_ru(make_node)
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "Missile impact at Przewodow: need to talk")
    wait_for_event(ru, call_id, "ringing", "ccp-do")
    answer = ru.api("POST", f"/api/v1/calls/{call_id}/answer",
                    json={"as": "ccp-do", "operator": "ccp-1"})
    assert answer.status_code == 200, answer.text
    call = wait_for_state(us, call_id, "answered")

    assert call["id"] == call_id
    assert call["callee"] == "cgs@RU-GS"
    assert call["history"][0]["state"] == "placed"
    assert call["history"][0]["signed_by"] == "US-JS"
    theirs = callee_history(call, "RU-GS")
    assert all(e["verified"] for e in call["history"])
    assert theirs[0]["state"] == "delivered"
    assert list(dict.fromkeys(ringing_roles(call))) == ["cgs", "cgs-1d", "ccp-do"]
    states = [e["state"] for e in theirs]
    assert states[-1] == "answered"
    last = theirs[-1]
    assert (last["role"], last["operator"]) == ("ccp-do", "ccp-1")
    # both nodes know the call by the same id; the callee's copy agrees
    assert get_call(ru, call_id)["state"] == "answered"  # type: ignore[index]
    # answering opened a conversation on both sides
    assert us.api("GET", f"/api/v1/conversations/{call_id}").status_code == 200
    assert ru.api("GET", f"/api/v1/conversations/{call_id}").status_code == 200


def test_duty_officer_declines_with_a_reason_the_caller_sees_signed(make_node: Make) -> None:
    us, ru = us_and_ru(make_node)
    call_id = place(us, "cgs@RU-GS", "nmcc-do")
    wait_for_event(ru, call_id, "ringing", "ccp-do")
    reason = "principal unavailable, will call back"
    response = ru.api("POST", f"/api/v1/calls/{call_id}/decline",
                      json={"as": "ccp-do", "reason": reason})
    assert response.status_code == 200, response.text
    call = wait_for_event(us, call_id, "declined")
    declined = [e for e in call["history"] if e["state"] == "declined"]
    assert len(declined) == 1
    assert declined[0]["reason"] == reason
    assert declined[0]["signed_by"] == "RU-GS"
    assert declined[0]["verified"] is True
    assert call["state"] == "declined"
