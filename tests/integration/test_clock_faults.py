"""Clock faults on real node processes (THREATS T10, T21, T22).

A node's wall clock is stepped while it runs with libfaketime (``tests/nodes.py``,
:class:`~tests.nodes.FakeWallClock`): only the wall clock moves, the monotonic clock stays
real, as when NTP or an operator steps a machine's clock. libfaketime must be installed
(``.ci/run`` installs it); without it these tests fail, they are never skipped.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hotline.scenario import directory_toml
from tests.calls import apply_toml, get_call, place, wait_for_desks, wait_for_event, wait_for_state
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[[str], NodeProcess]
HOUR_S = 3600

#: RU's chain for ``cgs`` (finite): principal, deputy, duty officer, then ``unanswered``.
#: Ring k is due at the sum of the waits before it, ``unanswered`` after the last wait.
WAITS_S = (3.0, 3.0, 1.5)
RING_OFFSETS_S = tuple(sum(WAITS_S[:k]) for k in range(len(WAITS_S)))  # 0, 3, 6
END_OFFSET_S = sum(WAITS_S)                                              # 7.5


def _policy(toml: str, peer: str, *, deliver_within: str, late: str) -> str:
    """``toml`` with the link policy towards ``peer`` set to these values."""
    pattern = (rf'(\[links\.{re.escape(peer)}\]\nmay_call = .*\naccept = .*\n)'
               r'deliver_within = ".*"\nlate = ".*"\n')
    changed, count = re.subn(pattern, rf'\1deliver_within = "{deliver_within}"\n'
                                      rf'late = "{late}"\n', toml)
    assert count == 1, f"no [links.{peer}] policy in the directory"
    return changed


def us_directory(*, deliver_within: str = "5s", late: str = "deliver") -> str:
    """US-JS of the scenario without fallback rules (a failed call places no other call)."""
    toml = re.sub(r"\[\[links\.RU-GS\.fallback\]\]\n(?:[a-z].*\n)*", "",
                  directory_toml("US-JS", 60))
    assert "fallback" not in toml
    return _policy(toml, "RU-GS", deliver_within=deliver_within, late=late)


def ru_directory() -> str:
    """RU-GS of the scenario at speed 40 (two minutes take 3 s, one minute 1.5 s), its
    ``cgs`` chain made finite: the waits of :data:`WAITS_S`, then ``unanswered``."""
    toml, count = re.subn(r'(\[chains\.cgs\]\n)repeat_every = ".*"\n', r"\1",
                          directory_toml("RU-GS", 40))
    assert count == 1
    chain = toml[toml.index("[chains.cgs]"):]
    assert re.findall(r'wait = "(\d+)ms"', chain) == [f"{w * 1000:.0f}" for w in WAITS_S]
    return toml


def pair(make: Make, *, us_toml: str | None = None) -> tuple[NodeProcess, NodeProcess]:
    """US-JS and RU-GS, linked, with their directories; neither started."""
    us, ru = make("US-JS"), make("RU-GS")
    link(us, ru)
    apply_toml(us, us_toml or us_directory())
    apply_toml(ru, ru_directory())
    return us, ru


def clock_steps(node: NodeProcess) -> int:
    """How many wall-clock steps the node has detected and applied (its alarm's count)."""
    alarms = node.status()["alarms"]
    return sum(a["count"] for a in alarms if a["kind"] == "clock-step")


def received(node: NodeProcess, sender: str) -> list[str]:
    return [m["text"] for m in node.inbox() if m["from"] == sender]


def tasks_all_running(node: NodeProcess) -> dict[str, str]:
    body = httpx.get(node.url + "/healthz", timeout=5.0).json()
    tasks: dict[str, str] = body["tasks"]
    assert tasks
    assert all(state == "running" for state in tasks.values()), tasks
    assert body["tasks_down"] == []
    return tasks


class StatementWatch:
    """The first sight of each of ``signer``'s statements about a call on ``node``, on
    this test's monotonic clock: a thread reads the call every 20 ms. A statement's
    ``at`` is the signer's wall clock, which these tests step; this is the real time at
    which the statement could be seen on ``node``."""

    def __init__(self, node: NodeProcess, call_id: str, signer: str,
                 interval_s: float = 0.02) -> None:
        self.node = node
        self.signer = signer
        #: (state, step, role) of each statement -> (first seen, the history entry)
        self.seen: dict[tuple[str, int | None, str | None], tuple[float, dict[str, Any]]] = {}
        self.error: BaseException | None = None
        self._url = f"{node.url}/api/v1/calls/{call_id}"
        self._interval = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with httpx.Client(headers={"authorization": f"Bearer {self.node.token}"},
                              timeout=5.0) as client:
                while not self._stop.is_set():
                    response = client.get(self._url)
                    now = time.monotonic()
                    if response.status_code == 200:
                        for event in response.json()["history"]:
                            if event["signed_by"] == self.signer:
                                key = (event["state"], event["step"], event["role"])
                                with self._lock:
                                    self.seen.setdefault(key, (now, event))
                    self._stop.wait(self._interval)
        except BaseException as exc:  # handed to the test's thread
            self.error = exc

    def first(self, state: str, role: str | None = None) -> float | None:
        """When the statement ``state`` (for ``role``) was first seen, if it was."""
        if self.error is not None:
            raise AssertionError(f"watching {self.node.party} failed: {self.error!r}")
        with self._lock:
            for when, event in self.seen.values():
                if event["state"] == state and (role is None or event["role"] == role):
                    return when
        return None

    def seen_at(self, state: str, role: str | None = None) -> float:
        when = self.first(state, role)
        assert when is not None, f"{state} {role or ''} was never seen on {self.node.party}"
        return when

    def wait(self, state: str, role: str | None = None, timeout: float = 30.0) -> float:
        when: float = wait_until(lambda: self.first(state, role), timeout,
                                 what=f"{state} {role or ''} on {self.node.party}")
        return when

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_until_monotonic(instant: float) -> None:
    """Hold a fault until its planned instant (this schedules a step; it never stands in
    for waiting on the nodes)."""
    time.sleep(max(0.0, instant - time.monotonic()))


def test_callee_clock_steps_an_hour_ahead_and_back_while_the_call_rings(
        make_node: Make) -> None:
    """RU's wall clock steps +1 h half-way between ring 0 and ring 1 and back to real
    time half-way between ring 1 and ring 2 of a finite chain (rings due 0, 3 and 6 s
    after delivery, ``unanswered`` at 7.5 s).

    What is measured. Threads of this test read the call on RU and on US every 20 ms and
    note, on the test's monotonic clock, when each of RU's statements first shows there.
    Ring k is due ``offset_k`` after delivery (``delivered`` and ring 0 are one
    transaction), so its lateness is ``seen_on_RU(ring k) - seen_on_RU(delivered) -
    offset_k``, give or take the 20 ms polling; it must lie in (-0.25, 1) s. The signed
    ``at`` of a statement is RU's stepped wall clock and measures nothing here: it only
    shows that the step was in force when ring 1 was signed. A second figure comes from
    RU's ``timers`` rows, ``fired_at - due_at`` per deadline: a step moves the unfired
    ``due_at`` together with RU's clock, so both are in the clock as it stood when the
    row fired and their difference is a duration; it must lie in [0, 1000) ms.

    While RU is an hour ahead, US refuses its envelopes (``timestamp-out-of-window``, the
    skew window is 300 s): the caller sees ring 1 only after RU's clock is back (re-sealed
    then), and must still hold every statement once, verified, in the order RU made
    them. Statements made while both clocks were right must reach it within 1 s."""
    us, ru = pair(make_node)
    ru_wall = ru.fake_wall_clock(0)
    us.start()
    ru.start()
    wait_for_desks(us, "RU-GS")
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "clock steps while ringing")
    on_ru, on_us = StatementWatch(ru, call_id, "RU-GS"), StatementWatch(us, call_id, "RU-GS")
    try:
        delivered = on_ru.wait("delivered")
        on_ru.wait("ringing", "cgs")
        wait_until_monotonic(delivered + 1.5)
        ru_wall.set(HOUR_S)
        wait_until(lambda: clock_steps(ru) == 1, 5, what="RU to apply the +1 h step")
        on_ru.wait("ringing", "cgs-1d", timeout=10)
        wait_until_monotonic(delivered + 4.5)
        ru_wall.set(0)
        back = time.monotonic()
        wait_until(lambda: clock_steps(ru) == 2, 5, what="RU to apply the step back")
        on_ru.wait("unanswered", timeout=15)
        on_us.wait("unanswered", timeout=30)
    finally:
        on_ru.stop()
        on_us.stop()

    # -- on RU: each ring once, in order, on time ---------------------------------------
    made = [("ringing", "cgs"), ("ringing", "cgs-1d"), ("ringing", "ccp-do"),
            ("unanswered", None)]
    due = [*RING_OFFSETS_S, END_OFFSET_S]
    seen_ru = [on_ru.seen_at(state, role) for state, role in made]
    lateness = [round(when - delivered - offset, 3)
                for when, offset in zip(seen_ru, due, strict=True)]
    print(f"lateness on RU (s), rings 0-2 then unanswered: {lateness}")
    assert all(-0.25 < late < 1.0 for late in lateness), lateness

    ru_call = get_call(ru, call_id)
    assert ru_call is not None
    assert ru_call["state"] == "unanswered"
    assert [(e["state"], e["step"], e["role"]) for e in ru_call["history"]] == [
        ("delivered", None, "cgs"), ("ringing", 0, "cgs"), ("ringing", 1, "cgs-1d"),
        ("ringing", 2, "ccp-do"), ("unanswered", 2, None)]
    at = [e["at"] for e in ru_call["history"]]
    assert abs(at[2] - at[1] - (HOUR_S + 3) * 1000) < 1000, at  # signed an hour ahead
    assert abs(at[3] - at[1] - 6000) < 1000, at                 # and back again

    timers = ru.query("SELECT key, due_at, fired_at, outcome FROM timers "
                      "WHERE call_id = :c ORDER BY id", c=call_id)
    assert [(t.key.split(":", 1)[1], t.outcome) for t in timers] == [
        ("ring:1", "fired"), ("ring:2", "fired"), ("ring:3", "fired")]
    fired_late = [int(t.fired_at - t.due_at) for t in timers]
    print(f"RU's timers, fired_at - due_at (ms), rings 1-2 then unanswered: {fired_late}")
    assert all(0 <= late < 1000 for late in fired_late), fired_late

    # -- on US: every statement once, verified, in RU's order ---------------------------
    seen_us = [on_us.seen_at(state, role) for state, role in made]
    transit = [round(u - r, 3) for u, r in zip(seen_us, seen_ru, strict=True)]
    ring1_after_back = round(seen_us[1] - back, 3)
    print(f"seen on US after RU (s): {transit}; ring 1 reached US {ring1_after_back} s "
          "after RU's clock was back")
    assert all(transit[i] < 1.0 for i in (0, 2, 3)), transit
    assert 0 < ring1_after_back < 10, ring1_after_back
    us_call = get_call(us, call_id)
    assert us_call is not None
    assert us_call["state"] == "unanswered"
    assert [(e["signed_by"], e["state"], e["role"]) for e in us_call["history"]] == [
        ("US-JS", "placed", "nmcc-do"), ("RU-GS", "delivered", "cgs"),
        ("RU-GS", "ringing", "cgs"), ("RU-GS", "ringing", "cgs-1d"),
        ("RU-GS", "ringing", "ccp-do"), ("RU-GS", "unanswered", None)]
    assert all(e["verified"] for e in us_call["history"])
    assert us.log_lines("timestamp-out-of-window")  # what kept ring 1 from the caller
    assert ru.log_lines("re-sealed")

    # -- the line still works both ways -------------------------------------------------
    us.send("RU-GS", ["after the steps, to RU"])
    ru.send("US-JS", ["after the steps, to US"])
    wait_until(lambda: "after the steps, to RU" in received(ru, "US-JS"), 30, what="US -> RU")
    wait_until(lambda: "after the steps, to US" in received(us, "RU-GS"), 30, what="RU -> US")


def test_a_callee_two_minutes_ahead_rings_a_call_that_arrives_in_time(
        make_sqlite_node: Make) -> None:
    """US's policy for RU: ``deliver_within = "30s"``, ``late = "expire"``. RU's clock is
    120 s ahead the whole time, so by RU's clock the call arrives 90 s after US's deadline
    would have passed; by US's clock it arrives at once, so it must ring (lateness is
    decided on the caller's clock alone, T21)."""
    us, ru = pair(make_sqlite_node, us_toml=us_directory(deliver_within="30s", late="expire"))
    ru.fake_wall_clock(120)
    us.start()
    ru.start()
    wait_for_desks(us, "RU-GS")
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "RU is two minutes ahead")
    call = wait_for_event(us, call_id, "ringing", "cgs")
    assert call["state"] == "ringing"
    assert all(e["verified"] for e in call["history"])
    ru_call = wait_for_state(ru, call_id, "ringing")
    states = [e["state"] for e in ru_call["history"]]
    assert "expired" not in states
    assert states[:2] == ["delivered", "ringing"]
    delivered = next(e for e in ru_call["history"] if e["state"] == "delivered")
    ahead_ms = delivered["at"] - ru_call["placed_at"]
    print(f"RU signed 'delivered' {ahead_ms} ms after US placed the call (US's clock)")
    assert 119_000 < ahead_ms < 125_000  # RU really was two minutes ahead


def test_a_call_that_reaches_the_callee_after_the_callers_deadline_arrives_expired(
        make_sqlite_node: Make) -> None:
    """The converse: RU (still 120 s ahead) is down until US's ``deliver_within`` (3 s
    here, to keep the test short) has passed on US's clock; the call must arrive
    ``expired``, decided by RU from the spent budget US re-sealed it with, never ring, and
    the caller must get RU's signed ``expired``."""
    us, ru = pair(make_sqlite_node, us_toml=us_directory(deliver_within="3s", late="expire"))
    us.configure("delivery", backoff_max_seconds=0.5)
    ru.fake_wall_clock(120)
    us.start()
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "RU is down")
    wait_for_state(us, call_id, "undeliverable", timeout=15)
    ru.start()
    ru_call = wait_for_state(ru, call_id, "expired", timeout=30)
    assert [e["state"] for e in ru_call["history"]] == ["expired"]
    call = wait_for_event(us, call_id, "expired", timeout=30)
    assert call["state"] == "expired"
    assert all(e["verified"] for e in call["history"])
    assert not any(e["state"] == "ringing" for e in call["history"])
    payload = ru.query("SELECT payload FROM inbound WHERE type = 'call.place'")
    assert len(payload) == 1
    assert '"budget_ms":0' in payload[0].payload


def test_thousands_of_failed_attempts_then_the_peer_returns(make_node: Make) -> None:
    """US retries RU every 1-2 ms while RU is down. The old backoff overflowed after about
    1,024 consecutive failures and killed the sender for good; here US must pass 3,000
    failed attempts with every task running (``/healthz``, checked throughout), and the
    queued message must arrive within 30 s of RU's start."""
    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    us.configure("delivery", backoff_initial_seconds=0.001, backoff_max_seconds=0.002)
    us.start()
    tasks = tasks_all_running(us)
    assert "sender-RU-GS" in tasks
    us.send("RU-GS", ["queued through thousands of failures"])
    started = time.monotonic()

    def failed_attempts() -> int:
        tasks_all_running(us)
        count: int = us.peer_status("RU-GS")["failed_attempts"]
        return count
    wait_until(lambda: failed_attempts() >= 3000, 60, interval=0.2,
               what="3,000 failed attempts")
    took = time.monotonic() - started
    status = us.peer_status("RU-GS")
    print(f"{status['failed_attempts']} failed attempts in {took:.1f} s")
    assert status["state"] == "unreachable"
    assert status["queued"] == 1

    ru.start()
    returned = time.monotonic()

    def delivered() -> bool:
        tasks_all_running(us)
        return "queued through thousands of failures" in received(ru, "US-JS")
    wait_until(delivered, 30, interval=0.1, what="the queued message at RU")
    print(f"delivered {time.monotonic() - returned:.2f} s after RU started")
    status = wait_until(lambda: (s := us.peer_status("RU-GS"))["queued"] == 0 and s, 30,
                        what="US's receipt")
    assert status["failed_attempts"] == 0
    assert status["last_error"] is None
    tasks_all_running(us)


def test_a_message_sealed_while_the_clock_was_an_hour_ahead_arrives_after_correction(
        make_sqlite_node: Make) -> None:
    """US's clock is +1 h while RU is down; a message is sealed then (its signed ``ts``
    an hour in the future); US's clock steps back; RU starts. RU would refuse the stored
    envelope (300 s skew window), so US must re-seal it: it arrives within 30 s."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.configure("delivery", backoff_max_seconds=0.5)
    us_wall = us.fake_wall_clock(0)
    us.start()
    us_wall.set(HOUR_S)
    wait_until(lambda: clock_steps(us) == 1, 5, what="US to apply the +1 h step")
    us.send("RU-GS", ["sealed an hour ahead"])
    sealed = us.query("SELECT sealed_at FROM outbox WHERE peer = 'RU-GS'")[0].sealed_at
    ahead_s = (sealed - time.time() * 1000) / 1000
    assert HOUR_S - 60 < ahead_s < HOUR_S + 60, ahead_s  # sealed "in the future"
    us_wall.set(0)
    wait_until(lambda: clock_steps(us) == 2, 5, what="US to apply the step back")
    ru.start()
    returned = time.monotonic()
    wait_until(lambda: received(ru, "US-JS") == ["sealed an hour ahead"], 30,
               what="the message at RU")
    print(f"delivered {time.monotonic() - returned:.2f} s after RU started")
    sent_at = ru.query("SELECT sent_at FROM inbound WHERE peer = 'US-JS'")[0].sent_at
    assert abs(sent_at - time.time() * 1000) < 60_000  # re-sealed on the corrected clock
    assert us.log_lines("re-sealed")


def _expiring(party: str, deliver_within: str) -> str:
    return (directory_toml(party, 200.0, 5000)
            .replace('deliver_within = "5000ms"', f'deliver_within = "{deliver_within}"')
            .replace('late = "deliver"', 'late = "expire"'))


@pytest.mark.parametrize(("step_s", "deliver_within", "outage_s", "expected"), [
    (50, "20s", 4, "ringing"),   # 5 s of a 20 s budget used, whatever the clock says
    (-50, "5s", 7, "expired"),   # the budget was spent, though the seal looks recent
])
def test_a_step_while_a_call_waits_for_its_callee_keeps_the_budget_true(
        make_sqlite_node: Make, step_s: int, deliver_within: str, outage_s: float,
        expected: str) -> None:
    """The caller's clock steps while its call waits for a callee that is down: the
    budget the callee receives is what is really left on the caller's monotonic clock
    (a +50 s step once spent a 20 s budget at once; a -50 s step once let a late call
    ring). The outage is a real wait: it is the time the budget measures."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    apply_toml(us, _expiring("US-JS", deliver_within))
    apply_toml(ru, directory_toml("RU-GS", 200.0, 5000))
    wall = us.fake_wall_clock()
    us.start()
    ru.start()
    try:
        wait_until(lambda: [d for d in us.api("GET", "/api/v1/desks").json()["desks"]
                            if d["party"] == "RU-GS"], 30, what="RU's desks on US")
        ru.stop()
        call_id = place(us, "cgs@RU-GS", "nmcc-do")
        wall.set(step_s)
        wait_until(lambda: us.log_lines("wall clock stepped"), 10, what="the step applied")
        time.sleep(outage_s)
        ru.start()
        call = wait_for_state(ru, call_id, "expired", "delivered", "ringing", timeout=60)
        assert call["state"] == expected, call["history"]
    finally:
        us.stop()
        ru.stop()
