"""Helpers for call tests: scenario directories on real nodes, and reading call state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotline.admin import apply_directory, list_links
from hotline.scenario import directory_toml
from tests.nodes import NodeProcess, link, wait_until

#: scenario time / SPEED = test time: a two-minute step takes 0.6 s, a minute 0.3 s
SPEED = 200.0


def apply_scenario(node: NodeProcess, speed: float = SPEED,
                   deliver_within_ms: int | None = 5000) -> None:
    """The scenario's directory of ``node``'s party, with policies for the parties it is
    linked with (all of its scenario peers if none yet)."""
    linked = [link.party for link in list_links(node.dir)] or None
    path = node.dir / "directory.toml"
    path.write_text(directory_toml(node.party, speed, deliver_within_ms, peers=linked),
                    encoding="utf-8")
    _apply(node, path)


def apply_toml(node: NodeProcess, text: str, name: str = "directory.toml") -> Path:
    path = node.dir / name
    path.write_text(text, encoding="utf-8")
    _apply(node, path)
    return path


def _apply(node: NodeProcess, path: Path) -> None:
    # Forced: a test links a node with some of the scenario's parties only, or none yet,
    # or links it with one the scenario has no policy for; the link checks are tested on
    # their own (tests/integration/test_directory_links.py).
    apply_directory(node.dir, path, force=True)


def place(node: NodeProcess, to: str, as_role: str, reason: str | None = None) -> str:
    response = node.api("POST", "/api/v1/calls", json={"to": to, "as": as_role,
                                                      "reason": reason})
    assert response.status_code == 201, response.text
    call_id: str = response.json()["id"]
    return call_id


def get_call(node: NodeProcess, call_id: str) -> dict[str, Any] | None:
    response = node.api("GET", f"/api/v1/calls/{call_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for_state(node: NodeProcess, call_id: str, *states: str,
                   timeout: float = 30.0) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        call = get_call(node, call_id)
        return call if call is not None and call["state"] in states else None
    return wait_until(reached, timeout, what=f"call {call_id} on {node.party} to be {states}")


def wait_for_event(node: NodeProcess, call_id: str, state: str, role: str | None = None,
                   timeout: float = 30.0) -> dict[str, Any]:
    """The call once its history holds a ``state`` event (for ``role``, if given)."""
    def seen() -> dict[str, Any] | None:
        call = get_call(node, call_id)
        if call is None:
            return None
        for event in call["history"]:
            if event["state"] == state and (role is None or event["role"] == role):
                return call
        return None
    return wait_until(seen, timeout, what=f"{state} {role or ''} on {node.party}")


def ringing_roles(call: dict[str, Any]) -> list[str]:
    return [e["role"] for e in call["history"] if e["state"] == "ringing"]


def wait_for_desks(node: NodeProcess, party: str) -> list[dict[str, Any]]:
    def known() -> list[dict[str, Any]]:
        desks: list[dict[str, Any]] = node.api("GET", "/api/v1/desks").json()["desks"]
        return [d for d in desks if d["party"] == party]
    return wait_until(known, 30, what=f"{party}'s desks on {node.party}")  # type: ignore[no-any-return]


def us_and_ru(make: Callable[..., NodeProcess]) -> tuple[NodeProcess, NodeProcess]:
    """US-JS and RU-GS linked, with the scenario's directories, running, and RU's desks
    known to US."""
    us, ru = make("US-JS"), make("RU-GS")
    link(us, ru)
    apply_scenario(us)
    apply_scenario(ru)
    us.start()
    ru.start()
    wait_for_desks(us, "RU-GS")
    return us, ru
