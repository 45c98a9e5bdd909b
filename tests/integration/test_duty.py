"""Who is on duty, on real nodes (SQLite and PostgreSQL): escalation rings the holder the
final schedule names at the instant of each ring, desk staffing follows the same answer
as ``hotline schedule who``, and the duty watch logs hand-overs and raises the gap alarm
before the gap comes.

The RU-GS scenario staffs ``ccp-do`` by 12-hour watches among ccp-1..ccp-4 in
Europe/Moscow (UTC+3 all year), handed over at 08:00 from 2024-01-01: the tests work out
who holds the watch by that arithmetic, not by asking the code under test.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from hotline.calls.duty import OPEN_END_MS
from hotline.clock import SystemClock
from hotline.console.audit import LogQuery
from hotline.node import Node, Polls
from hotline.nodedir.config import KEYSTORE_NAME, load_config
from hotline.nodedir.keystore import unlock
from hotline.scenario import directory_toml
from hotline.store import log as log_store
from tests.calls import SPEED, apply_toml, place, wait_for_desks, wait_for_event
from tests.e2e.test_cli import as_json, hotline
from tests.integration.test_health import apply_directory
from tests.nodes import PASSPHRASE, NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]
WATCH_MS = 12 * 3600 * 1000
#: 2024-01-01 08:00 in Moscow (UTC+3): ccp-1's first watch begins
ANCHOR_MS = int(datetime(2024, 1, 1, 5, 0, tzinfo=UTC).timestamp() * 1000)


def on_watch(at_ms: int) -> str:
    """Who the scenario's rotation names at ``at_ms``, worked out by hand."""
    return f"ccp-{(at_ms - ANCHOR_MS) // WATCH_MS % 4 + 1}"


def after(officer: str) -> str:
    return f"ccp-{int(officer[-1]) % 4 + 1}"


def now_ms() -> int:
    return SystemClock().now_ms()


def linked(make: Make, ru_toml: str | None = None) -> tuple[NodeProcess, NodeProcess]:
    us, ru = make("US-JS"), make("RU-GS")
    link(us, ru)
    apply_toml(us, directory_toml("US-JS", SPEED, 5000))
    apply_toml(ru, ru_toml or directory_toml("RU-GS", SPEED, 5000))
    us.start()
    ru.start()
    wait_for_desks(us, "RU-GS")
    return us, ru


def who_cli(ru: NodeProcess, at: str | None = None) -> dict[str, Any]:
    args = ["schedule", "who", "ccp-do", "--dir", str(ru.dir), "--json"]
    body: dict[str, Any] = as_json(hotline(*args, *(["--at", at] if at else [])))
    return body


def test_escalation_rings_the_holder_the_schedule_names_at_each_ring(make_node: Make
                                                                    ) -> None:
    us, ru = linked(make_node)
    told = who_cli(ru)
    holder = on_watch(told["at_ms"])
    assert told["holders"] == [holder]
    assert told["source"] == "layer:watch"
    # from T0 on, an override gives the watch to the next officer (a calendar instant)
    relief = after(holder)
    t0 = now_ms() + 6000
    made = ru.api("POST", "/api/v1/roster", json={"operator": relief, "role": "ccp-do",
                                                  "from_ms": t0, "until_ms": t0 + 3_600_000})
    assert made.status_code == 200, made.text
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "who is on watch?")

    def relieved() -> list[dict[str, Any]] | None:
        events = wait_for_event(ru, call_id, "ringing", "ccp-do")["history"]
        rings = [e for e in events if e["state"] == "ringing" and e["role"] == "ccp-do"]
        return rings if any(e["who"] == [relief] for e in rings) else None
    rings = wait_until(relieved, 30, what="a ring of ccp-do after the override began")
    before = [e for e in rings if _ms(e["at"]) < t0]
    assert before, "the duty officer was first rung after T0: the test ran too slowly"
    for ring in rings:  # each ring reached exactly who held the watch at its instant
        expected = [relief] if _ms(ring["at"]) >= t0 else [on_watch(_ms(ring["at"]))]
        assert ring["who"] == expected, (ring, t0)
    # answered as the officer `schedule who` names now
    assert who_cli(ru)["holders"] == [relief]
    answer = ru.api("POST", f"/api/v1/calls/{call_id}/answer",
                    json={"as": "ccp-do", "operator": relief})
    assert answer.status_code == 200, answer.text


def test_desk_staffing_follows_the_schedule_and_overrides_survive_applies(make_node: Make
                                                                         ) -> None:
    """Staffed means: the operator `schedule who` names has been seen. Presence of an
    officer whose watch an override took away does not staff the desk."""
    # presence counts for ten minutes here, so only a change of holder can unstaff it
    ru_toml = re.sub(r'staffed_within = "[^"]*"', 'staffed_within = "10m"',
                     directory_toml("RU-GS", SPEED, 5000), count=1)
    us, ru = linked(make_node, ru_toml)

    def staffed() -> bool | None:
        rows = us.api("GET", "/api/v1/desks").json()["desks"]
        desk = [d for d in rows if d["role"] == "ccp-do"]
        return desk[0]["staffed"] if desk else None

    holder = who_cli(ru)["holders"][0]
    assert ru.api("POST", "/api/v1/presence", json={"operator": holder}).status_code == 204
    wait_until(lambda: staffed() is True, 15, what="ccp-do staffed at US")
    # the watch goes to another officer, who is not at the desk: unstaffed
    relief = after(holder)
    made = ru.api("POST", "/api/v1/roster", json={"operator": relief, "role": "ccp-do"})
    assert made.status_code == 200, made.text
    assert made.json()["override"]["until_ms"] == OPEN_END_MS
    assert who_cli(ru)["holders"] == [relief]
    wait_until(lambda: staffed() is False, 15, what="ccp-do unstaffed at US")
    assert ru.api("POST", "/api/v1/presence", json={"operator": relief}).status_code == 204
    wait_until(lambda: staffed() is True, 15, what="ccp-do staffed by the relief")
    # a directory applied afterwards (a new version) keeps the override
    apply_toml(ru, ru_toml.replace('staffed_within = "10m"', 'staffed_within = "11m"'))
    assert who_cli(ru)["holders"] == [relief]
    versions = ru.query("SELECT COUNT(*) AS n FROM directory_versions")[0].n
    assert versions == 2


def _ms(at: object) -> int:
    if isinstance(at, int):
        return at
    return int(datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp() * 1000)


# -- the duty watch, in the node's own process --------------------------------------------

WATCH_DIRECTORY = """
[settings]
alarm_role = "duty"
gap_alarm_horizon = "1h"

[roles.duty]
title = { en = "Duty officer" }

[operators.duty-1]
name = "Duty one"
roles = ["duty"]

[operators.duty-2]
name = "Duty two"
roles = ["duty"]

[schedules.duty]
zone = "Europe/Warsaw"

[[schedules.duty.layers]]
name = "watch"
participants = ["duty-1", "duty-2"]
turn = "12h"
handover = "08:00"
start = 2024-01-01
"""


@pytest.fixture
async def node(make_node: Make) -> AsyncIterator[Node]:
    made = make_node("AA-ONE")
    running = Node(made.dir, load_config(made.dir), unlock(made.dir / KEYSTORE_NAME,
                                                           PASSPHRASE),
                   polls=Polls(duty_s=0.05))
    await running.start()
    yield running
    await running.stop()


async def _until(predicate: Callable[[], Any], limit: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        value = await predicate()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_gap_is_alarmed_before_it_comes_and_hand_overs_are_logged(node: Node
                                                                         ) -> None:
    await apply_directory(node, WATCH_DIRECTORY)
    assert "duty-watch" in {t.name for t in node.tasks()}
    [holder] = await node.duty.who("duty")
    # the holder is away for 2 s from 1.5 s on, and nobody else is on watch: a gap
    start = node.clock.now_ms() + 1500
    await node.duty.take_shift("duty", holder, start, start + 2000, unavailable=True)

    async def gap_alarm() -> Any:
        return [a for a in await node.alarms.standing() if a.cause == "duty-gap:duty"]
    [alarm] = await _until(gap_alarm)
    assert alarm.first_at < start, "the alarm came only with the gap"
    assert alarm.detail["from_ms"] == start
    assert alarm.detail["until_ms"] == start + 2000
    assert alarm.count == 1

    async def hand_overs() -> list[dict[str, Any]]:
        page = await node.search_log(LogQuery(kind="hand-over", limit=200))
        return page.entries

    async def back() -> Any:
        found = await hand_overs()
        return found if len(found) >= 2 else None
    logged = sorted(await _until(back), key=lambda r: r["idx"])
    gone, returned = (r["body"] for r in logged[:2])
    assert gone == {"role": "duty", "from": [holder], "to": [], "since_ms": start}
    assert returned == {"role": "duty", "from": [], "to": [holder], "since_ms": start + 2000}
    assert logged[0]["at"] >= start
    # the gap is over and none is ahead: the alarm is cleared; both are on the log
    await _until(lambda: _none(gap_alarm))
    kinds = [(r.kind, json.loads(r.entry)["body"].get("cause"))
             for r in await node.db.read(lambda conn: log_store.latest(conn, 200))]
    assert ("alarm", "duty-gap:duty") in kinds
    assert ("alarm-cleared", "duty-gap:duty") in kinds


async def _none(check: Callable[[], Any]) -> bool:
    return not await check()


class OffsetClock(SystemClock):
    """The real clocks, the wall clock set ``offset_ms`` ahead (the node's injected clock)."""

    def __init__(self, offset_ms: int) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


async def test_a_layer_hand_over_at_local_time_is_logged_when_it_happens(
        make_node: Make) -> None:
    """The node's clock set 5 s before a 20:00 Warsaw hand-over (tomorrow, worked out
    here with zoneinfo): the watch logs it, dated at the hand-over's instant."""
    from datetime import date, timedelta
    from zoneinfo import ZoneInfo

    warsaw = ZoneInfo("Europe/Warsaw")
    tomorrow = datetime.now(warsaw).date() + timedelta(days=1)
    boundary_local = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 20, tzinfo=warsaw)
    boundary = int(boundary_local.timestamp() * 1000)
    turns = (tomorrow - date(2024, 1, 1)).days * 2 + 1  # 08:00 and 20:00 each day
    before, after_ = f"duty-{(turns - 1) % 2 + 1}", f"duty-{turns % 2 + 1}"
    made = make_node("AA-ONE")
    node = Node(made.dir, load_config(made.dir), unlock(made.dir / KEYSTORE_NAME, PASSPHRASE),
                clock=OffsetClock(boundary - 5000 - now_ms()), polls=Polls(duty_s=0.05))
    await node.start()
    try:
        await apply_directory(node, WATCH_DIRECTORY)
        assert await node.duty.who("duty") == (before,)

        async def handed() -> list[dict[str, Any]]:
            rows = await node.db.read(lambda conn: log_store.latest(conn, 50))
            return [json.loads(r.entry)["body"] for r in rows if r.kind == "hand-over"]
        [entry] = await _until(handed)
        assert entry == {"role": "duty", "from": [before], "to": [after_],
                         "since_ms": boundary}
        assert await node.duty.who("duty") == (after_,)
    finally:
        await node.stop()
