"""The node's health on a real node (SQLite and PostgreSQL): a failing background task
raises one coalesced alarm that shows in status, /healthz, the calls-events journal and
the log, and is cleared once the task runs again; a wall-clock step moves the persisted
duration deadlines and nothing else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import select

from hotline.clock import SystemClock
from hotline.health.alarms import Alarm
from hotline.node import Node, open_node
from hotline.store import schedules as schedule_store
from hotline.store import timers
from hotline.store.schema import journal, log_entries
from hotline.store.schema import timers as timers_table
from tests.nodes import PASSPHRASE, NodeProcess


class SteppableClock(SystemClock):
    """The real clocks, with a wall clock that can be stepped (as `date -s` would)."""

    def __init__(self) -> None:
        self.step_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.step_ms


async def _until(predicate: Callable[[], object], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def node(make_node: Callable[[str], NodeProcess]) -> AsyncIterator[Node]:
    made = make_node("AA-ONE")
    running = open_node(made.dir, PASSPHRASE)
    running.supervisor._initial = 0.01  # restart quickly in the test
    running.supervisor._healthy_after = 0.3
    await running.start()
    yield running
    await running.stop()


async def test_a_failing_task_is_alarmed_once_shown_and_cleared(node: Node) -> None:
    runs = 0
    healed = asyncio.Event()

    async def probe() -> None:
        nonlocal runs
        runs += 1
        if not healed.is_set():
            raise RuntimeError(f"probe failure {runs}")
        await asyncio.Event().wait()

    node.supervisor.spawn("probe", probe)
    await _until(lambda: runs >= 3)
    tasks, alarms = await node.node_health()
    assert {t.name for t in tasks} >= {"probe", "timers", "notifier", "checkpointer",
                                       "clock-watch", "link-poller", "desk-reporter",
                                       "duty-watch"}
    probe_state = next(t for t in tasks if t.name == "probe")
    assert probe_state.restarts >= 2
    assert "probe failure" in (probe_state.last_error or "")
    [alarm] = [a for a in alarms if a.cause == "task-failed:probe"]
    assert alarm.kind == "task-failed"
    assert alarm.count >= 2

    transport = httpx.ASGITransport(app=node.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        health = (await client.get("/healthz")).json()
        token = (node.dir / "operator.token").read_text().strip()
        status = (await client.get("/api/v1/status",
                                   headers={"authorization": f"Bearer {token}"})).json()
    assert health["ok"] is True
    assert health["tasks"]["timers"] == "running"
    assert health["alarms"] >= 1
    assert any(a["cause"] == "task-failed:probe" for a in status["alarms"])

    def recorded(conn):  # type: ignore[no-untyped-def]
        entries = conn.execute(select(journal.c.body).where(journal.c.kind == "alarm")).all()
        logged = conn.execute(select(log_entries.c.entry)
                              .where(log_entries.c.kind == "alarm")).all()
        return [json.loads(r.body) for r in entries], [json.loads(r.entry) for r in logged]
    streamed, logged = await node.db.read(recorded)
    raised = [e for e in streamed if e["alarm"]["cause"] == "task-failed:probe"]
    assert len(raised) == 1
    assert raised[0]["alarm"]["state"] == "raised"
    assert sum(1 for e in logged if e["body"]["cause"] == "task-failed:probe") == 1

    healed.set()
    await _until(lambda: node.supervisor.states["probe"].state == "running")
    for _ in range(200):
        if not any(a.cause == "task-failed:probe" for a in (await node.node_health())[1]):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the alarm was not cleared after the task recovered")
    await node.supervisor.cancel("probe")


async def test_alarms_of_one_cause_coalesce_until_cleared(node: Node) -> None:
    alarm = Alarm("clock-skew", "BB-TWO", "BB-TWO's clock is 250 s ahead")
    assert await node.alarms.raise_(alarm) is True
    assert await node.alarms.raise_(alarm) is False
    [row] = [a for a in await node.alarms.standing() if a.cause == alarm.key]
    assert row.count == 2
    assert await node.alarms.clear(alarm.key) is True
    assert await node.alarms.clear(alarm.key) is False
    assert await node.alarms.raise_(alarm) is True  # a new alarm after a clear


@pytest.mark.parametrize("step_s", [3600, -3600, -60])
async def test_a_wall_clock_step_moves_duration_deadlines_only(
        make_node: Callable[[str], NodeProcess], step_s: int) -> None:
    made = make_node("AA-ONE")
    source = SteppableClock()
    from hotline.nodedir.config import KEYSTORE_NAME, load_config
    from hotline.nodedir.keystore import unlock
    node = Node(made.dir, load_config(made.dir), unlock(made.dir / KEYSTORE_NAME, PASSPHRASE),
                clock=source)
    await node.start()
    try:
        now = node.clock.now_ms()

        def plant(conn):  # type: ignore[no-untyped-def]
            timers.schedule(conn, key="c1:ring:1", kind="escalate", call_id="c1",
                            due_at=now + 60_000)
            conn.execute(timers_table.insert().values(key="handover", kind="handover",
                                                      call_id="-", due_at=now + 90_000,
                                                      basis="calendar"))
            schedule_store.add_override(conn, role="duty", operator="duty-1",
                                        from_ms=now + 90_000, until_ms=now + 120_000,
                                        unavailable=False, created_by="admin", now_ms=now)
        await node.db.write(plant)
        source.step_ms = step_s * 1000
        await _until(lambda: bool(node.clock_watch.steps))
        assert abs(node.clock_watch.steps[0] - step_s * 1000) < 1000

        def read(conn):  # type: ignore[no-untyped-def]
            return {r.key: r.due_at for r in conn.execute(select(timers_table))}
        due = await node.db.read(read)
        # the wait still ends 60 s from when it was set; the calendar instant did not move
        assert abs(due["c1:ring:1"] - (now + 60_000 + step_s * 1000)) < 1000
        assert due["handover"] == now + 90_000
        [override] = await node.db.read(schedule_store.overrides)  # a calendar instant too
        assert (override.from_ms, override.until_ms) == (now + 90_000, now + 120_000)
        assert abs(node.clock.now_ms() - source.now_ms()) < 100
        alarms = await node.alarms.standing()
        assert any(a.kind == "clock-step" for a in alarms)
    finally:
        await node.stop()


ALARM_DIRECTORY = """
[settings]
alarm_role = "duty"

[roles.duty]
title = { en = "Duty officer" }

[operators.duty-1]
name = "Duty one"
roles = ["duty"]

[[roster]]
operator = "duty-1"
role = "duty"
status = "on-duty"

[channels.pager]
kind = "webhook"
url = "http://127.0.0.1:9/alarm"
secret = "0123456789abcdef0123456789abcdef"

[chains.duty]
steps = [{ ring = ["duty"], channels = ["console", "pager"], wait = "2m" }]
"""


async def apply_directory(node: Node, toml: str) -> None:
    """Through the operator API, as `hotline roles apply` would, then reloaded."""
    transport = httpx.ASGITransport(app=node.app())
    token = (node.dir / "operator.token").read_text().strip()
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        answer = await client.put("/api/v1/directory", json={"toml": toml},
                                  headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    await node.registry.reload()


async def test_an_alarm_rings_the_alarm_role_through_its_chain(node: Node) -> None:
    await apply_directory(node, ALARM_DIRECTORY)
    assert node.registry.current.alarm_role == "duty"
    alarm = Alarm("clock-skew", "BB-TWO", "BB-TWO's clock is 200 s ahead")
    await node.alarms.raise_(alarm)
    await node.alarms.raise_(alarm)  # coalesced: rings once

    def rows(conn):  # type: ignore[no-untyped-def]
        from hotline.store import notifications
        return notifications.all_rows(conn)
    alerts = [json.loads(r["alert"]) for r in await node.db.read(rows)]
    rung = [a for a in alerts if a["kind"] == "alarm"]
    assert len(rung) == 1
    assert rung[0]["callee"] == "duty@AA-ONE"
    assert rung[0]["operators"] == ["duty-1"]
    assert "200 s ahead" in rung[0]["reason"]


async def test_a_notification_that_fails_for_good_raises_one_alarm(node: Node) -> None:
    """The pager refuses every alert (HTTP 400, no retry can help): the ring of the alarm
    role fails, and that failure is itself an alarm, raised once — its own ring fails
    too, but the standing alarm only counts it, so nothing loops."""
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 7\r\n"
                     b"connection: close\r\n\r\nrefused")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        directory = ALARM_DIRECTORY.replace("http://127.0.0.1:9/alarm",
                                            f"http://127.0.0.1:{port}/alarm")
        await apply_directory(node, directory)
        await node.alarms.raise_(Alarm("clock-skew", "BB-TWO", "BB-TWO is 200 s ahead"))
        node.notifier.wake()

        async def failed() -> list[object]:
            return [a for a in await node.alarms.standing() if a.kind == "notification-failed"]
        for _ in range(500):
            if await failed():
                break
            await asyncio.sleep(0.02)
        [alarm] = await failed()
        assert alarm.subject == "pager"
        assert "HTTP 400" in alarm.message

        def rows(conn):  # type: ignore[no-untyped-def]
            from hotline.store import notifications
            return notifications.all_rows(conn)
        for _ in range(500):  # until the second ring's failure has been counted too
            [again] = await failed()
            if again.count == 2:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the second ring's failure was not counted")
        # two rings (the skew alarm, then the notification-failed alarm), no third: the
        # standing alarm only counted the second failure
        settled = await node.db.read(rows)
        assert len(settled) == 2
        assert all(r["failed_at"] is not None for r in settled)
    finally:
        server.close()
        await server.wait_closed()


def test_a_peer_down_raises_line_down_and_its_return_clears_it(
        make_node: Callable[..., NodeProcess]) -> None:
    """Real processes: US's every attempt to reach RU fails for longer than
    line_down_alarm_seconds — an alarm, in status; RU comes back — the message arrives
    and the alarm is cleared."""
    from tests.nodes import link, wait_until
    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    us.configure("delivery", line_down_alarm_seconds=1.0, backoff_max_seconds=0.2)
    us.start()
    try:
        us.send("RU-GS", ["are you there?"])

        def alarms() -> list[dict[str, object]]:
            return [a for a in us.status()["alarms"] if a["cause"] == "line-down:RU-GS"]
        [alarm] = wait_until(alarms, 30, what="the line-down alarm")
        assert "RU-GS" in str(alarm["message"])
        assert us.peer_status("RU-GS")["state"] == "unreachable"
        ru.start()
        wait_until(lambda: [m for m in ru.inbox() if m["text"] == "are you there?"], 30,
                   what="the queued message to arrive")
        wait_until(lambda: not alarms(), 30, what="the alarm to clear")
    finally:
        us.stop()
        ru.stop()


def test_an_operator_clears_an_alarm_from_the_cli_and_the_log_says_who(
        make_sqlite_node: Callable[..., NodeProcess]) -> None:
    """`hotline alarms` lists a real standing alarm (a line down: the peer never came up);
    `--clear` ends it and the log names who did; a cause that stands nowhere, or an empty
    one, is refused and changes nothing."""
    import subprocess
    import sys

    from tests.nodes import link, wait_until
    node, peer = make_sqlite_node("AA-ONE"), make_sqlite_node("BB-TWO")
    link(node, peer)
    node.configure("delivery", line_down_alarm_seconds=0.5, backoff_max_seconds=0.2)
    node.start()
    try:
        node.send("BB-TWO", ["hello?"])
        run = [sys.executable, "-m", "hotline", "alarms", "--dir", str(node.dir)]
        listed = wait_until(lambda: "line-down:BB-TWO" in (out := subprocess.run(
            run, capture_output=True, text=True, check=True).stdout) and out, 30,
            what="the line-down alarm in `hotline alarms`")
        assert "BB-TWO" in listed
        missing = subprocess.run([*run, "--clear", "no-such:cause"], capture_output=True,
                                 text=True, check=False)
        assert missing.returncode == 1
        assert "no-alarm" in missing.stderr + missing.stdout
        assert node.api("POST", "/api/v1/alarms/clear",
                        json={"cause": ""}).status_code == 422
        assert node.api("GET", "/api/v1/alarms").json()["alarms"]  # still standing
        subprocess.run([*run, "--clear", "line-down:BB-TWO", "--operator", "duty-1"],
                       check=True, capture_output=True)
        assert node.api("GET", "/api/v1/alarms").json()["alarms"] == []
        entries = [json.loads(r.entry) for r in node.query(
            "SELECT entry FROM log_entries WHERE kind = 'alarm-cleared'")]
        assert [e["body"]["cleared_by"] for e in entries] == ["duty-1"]
    finally:
        node.stop()


def test_a_new_envelope_cuts_a_long_backoff_short(
        make_sqlite_node: Callable[..., NodeProcess]) -> None:
    """US has failed long enough to wait 60-120 s between attempts; RU comes back and an
    operator sends something new: it goes at once, with what waited, not a minute later."""
    import time

    from tests.nodes import link, wait_until
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.configure("delivery", backoff_initial_seconds=60.0, backoff_max_seconds=120.0)
    us.start()
    try:
        us.send("RU-GS", ["queued during the outage"])
        wait_until(lambda: us.peer_status("RU-GS")["failed_attempts"] >= 1, 30,
                   what="a failed attempt")
        ru.start()
        sent = time.monotonic()
        us.send("RU-GS", ["sent after the return"])
        wait_until(lambda: len(ru.inbox()) == 2, 20, what="both messages")
        assert time.monotonic() - sent < 20  # far under the 30-120 s backoff
        assert [m["text"] for m in ru.inbox()] == ["queued during the outage",
                                                    "sent after the return"]
    finally:
        us.stop()
        ru.stop()
