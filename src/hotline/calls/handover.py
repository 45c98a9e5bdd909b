"""The duty watch: hand-overs are logged, and a gap is alarmed before it comes.

A supervised task (``duty-watch``, shown in ``hotline status`` and ``/healthz`` like every
other) that every ``interval_s`` (monotonic) asks the one duty function
(:func:`hotline.calls.duty.on_duty`) who holds each role *now*, on the node's clock:

* when the holders of a role differ from those last recorded (``duty_holders``), it writes
  a log entry of kind ``hand-over`` (``role``, ``from``, ``to``, ``since_ms``: when the new
  shift began) and records the new holders. The first sight of a role is recorded without
  an entry: there was nothing to hand over from. A hand-over that fell while the node was
  down is logged once at start, with the instant it really happened as ``since_ms``.
* for each role with a ``[schedules.<role>]``, when the final schedule has a gap that its
  ``accept_gaps`` does not accept within ``[settings] gap_alarm_horizon`` (default 24 h)
  from now, it raises the alarm ``duty-gap`` (cause ``duty-gap:<role>``, coalesced:
  raised once while it stands) — which rings the directory's ``alarm_role`` — and clears
  it when no such gap is left in the horizon.

Shift boundaries are calendar instants: compared with the node's wall clock as it is
(a detected clock step re-anchors it), never moved by a step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from hotline.calls import duty
from hotline.calls.directory import Directory
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.effects import Effects
from hotline.health.alarms import Alarm, Alarms
from hotline.schedules.final import unaccepted_gaps
from hotline.schedules.model import Shift
from hotline.store import alarms as alarm_store
from hotline.store import log as log_store
from hotline.store import schedules as schedule_store
from hotline.store.database import Database

CHECK_INTERVAL_S = 1.0
GAP_ALARM = "duty-gap"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Plan:
    """What one check found to do (empty: nothing to write)."""

    first_seen: dict[str, tuple[str, ...]] = field(default_factory=dict)
    handovers: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = \
        field(default_factory=dict)
    gone: list[str] = field(default_factory=list)
    gaps: dict[str, Shift] = field(default_factory=dict)
    clear: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.first_seen or self.handovers or self.gone or self.gaps
                    or self.clear)


def _since(conn: Connection, directory: Directory, role: str, names: tuple[str, ...],
           recorded_at: int, now: int) -> int:
    """When ``names`` took over ``role``: the start of the run of shifts up to ``now`` that
    they hold, looked for after the previous holders were recorded (a hand-over that fell
    while the node was down is dated when it happened, not when it was seen)."""
    # (the record may be "ahead" of now after the wall clock stepped back)
    start = min(max(recorded_at, now + 1 - duty.MAX_RANGE_MS, 0), now)
    since = now
    for shift in reversed(duty.final(conn, directory, role, start, now + 1)):
        if shift.holders != names:
            break
        since = shift.from_ms
    return since


def survey(conn: Connection, directory: Directory, now: int) -> _Plan:
    """Compare who holds each role now, and the gaps ahead, with what was recorded."""
    plan = _Plan()
    last = schedule_store.holders(conn)
    for role in sorted(directory.roles):
        names = duty.on_duty(conn, directory, role, now)
        previous = last.get(role)
        if previous is None:
            plan.first_seen[role] = names
        elif previous[0] != names:
            plan.handovers[role] = (previous[0], names,
                                    _since(conn, directory, role, names, previous[1], now))
    plan.gone = sorted(set(last) - set(directory.roles))
    standing = {a.cause for a in alarm_store.standing(conn) if a.kind == GAP_ALARM}
    horizon = directory.gap_alarm_horizon_ms
    watched = set()
    for role, schedule in sorted(directory.schedules.items()):
        if schedule.accept_gaps is True or role not in directory.roles:
            continue
        watched.add(f"{GAP_ALARM}:{role}")
        ahead = unaccepted_gaps(schedule, duty.final(conn, directory, role, now, now + horizon))
        gap = ahead[0] if ahead else None
        if gap is not None and f"{GAP_ALARM}:{role}" not in standing:
            plan.gaps[role] = gap
        elif gap is None and f"{GAP_ALARM}:{role}" in standing:
            plan.clear.append(f"{GAP_ALARM}:{role}")
    # a role whose schedule went away, or now accepts gaps, has no gap to warn of
    plan.clear += sorted(standing - watched)
    return plan


class DutyWatch:
    task_name = "duty-watch"

    def __init__(self, *, registry: Registry, db: Database, clock: Clock, alarms: Alarms,
                 interval_s: float = CHECK_INTERVAL_S) -> None:
        self._registry = registry
        self._db = db
        self._clock = clock
        self._alarms = alarms
        self._interval = interval_s

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)

    async def check(self) -> None:
        """One round: read first, and write only when something changed (a hand-over, a
        gap newly ahead or gone), re-deciding inside the write so a round that raced
        another writer acts on what is stored."""
        await self._registry.reload()
        directory = self._registry.current
        now = self._clock.now_ms()
        if not await self._db.read(lambda conn: survey(conn, directory, now)):
            return
        effects = await self._db.write(lambda conn: self._act(conn, directory, now))
        self._alarms.apply(effects)

    def _act(self, conn: Connection, directory: Directory, now: int) -> Effects:
        effects = Effects()
        plan = survey(conn, directory, now)
        for role, names in plan.first_seen.items():
            schedule_store.set_holders(conn, role, names, now)
        for role, (before, after, since) in plan.handovers.items():
            log_store.append_one(conn, "hand-over", {
                "role": role, "from": list(before), "to": list(after), "since_ms": since},
                now, subject=role)
            schedule_store.set_holders(conn, role, after, now)
        for role in plan.gone:
            schedule_store.forget_holders(conn, role)
        for role, gap in plan.gaps.items():
            ahead_s = max(0, gap.from_ms - now) // 1000
            self._alarms.raise_in(conn, Alarm(
                GAP_ALARM, role,
                f"nobody will be on duty in {role} from {_iso(gap.from_ms)} until "
                f"{_iso(gap.until_ms)} ({ahead_s // 3600} h {ahead_s % 3600 // 60} min "
                "from now): add an override (hotline schedule override) or fix the "
                "schedule",
                {"role": role, "from_ms": gap.from_ms, "until_ms": gap.until_ms}),
                now, effects)
        for cause in plan.clear:
            self._alarms.clear_in(conn, cause, now, effects)
        return effects
