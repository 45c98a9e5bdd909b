"""What must hold of a simulated run, judged from what the world recorded.

* **Messages** (:func:`deliveries`): every message an operator handed to a node is
  released at the peer exactly once, in the order accepted, and within
  :data:`DELIVERY_BUDGET_S` of the line becoming usable again — both nodes up, the link
  not cut, their wall clocks inside the skew window — once it stays usable that long.
  The same for a call's ``call.place``: the callee's node sees the call by then.
* **Escalation** (:func:`rings`): on the callee's node, ring ``k`` of a call's chain is
  due at the monotonic time the call was delivered plus ``Timing.offset(k)`` (the
  callee machine's monotonic clock, which a slew of that machine runs fast or slow). Each ring
  happens once, in order, with the chain's step, within :data:`RING_TOLERANCE_S` of
  that due time. A ring that fell due while the node was stopped happens within the same
  tolerance of its restart instead; repeats of the last step that fell due during one
  stop coalesce into one ring (the engine's documented rule). No ring after the call
  ended. A ring due within the tolerance of "now" or of the call's end may still be
  missing.
* **Tasks** (:func:`tasks`): every supervised task of a running node is running,
  starting (spawned, not yet stepped) for at most a second, or restarting for less than
  the supervisor's longest backoff, and a task that is down has its ``task-failed``
  alarm standing.
* **Visible failures** (:func:`visible`): a line that has been unusable long enough for
  the sender to have tried, with envelopes queued, shows as ``unreachable`` or
  ``failing`` in ``status``; a notification channel that failed (error or time-out) and
  has not delivered since has its ``notification-failed`` alarm standing; a wall clock
  that stepped has its ``clock-step`` alarm standing.
"""

from __future__ import annotations

from collections.abc import Sequence

from hotline.health.supervisor import RESTART_MAX_S
from hotline.notify import runner
from hotline.protocol.lanes import LANES
from tests.sim.harness import HOOKS, PARTIES, CallSeen, SimNode, Violation, World

DELIVERY_BUDGET_S = 30.0
RING_TOLERANCE_S = 1.0
EPS = 1e-6
#: How long after a line fails its sender must show it: one backoff (30 s) and a margin.
VISIBLE_AFTER_S = 35.0
#: How long a failed notification may go unalarmed (the alarm's own write).
ALARM_AFTER_S = 1.0
#: How long a task may be spawned without having been stepped by the event loop.
STARTING_MAX_S = 1.0
ALARM_AFTER_FAILURES = runner.ALARM_AFTER_FAILURES

Span = list[float | None]


def usable_by(spans: Sequence[Span], since: float, budget: float, now: float
              ) -> float | None:
    """When something accepted at ``since`` must have crossed a line usable during
    ``spans``: ``budget`` after the line was (or became) usable, provided it then stayed
    usable that long; None while no such moment has come."""
    for start, end in spans:
        assert start is not None
        if end is not None and end <= since:
            continue
        begin = max(start, since)
        stop = now if end is None else end
        if stop - begin >= budget:
            return begin + budget
    return None


def deliveries(world: World, now: float) -> list[Violation]:
    out: list[Violation] = []
    spans = world.lines[frozenset(PARTIES)]
    for sent in world.sent.values():
        what = f"message {sent.text!r} ({sent.sender}->{sent.receiver} seq {sent.seq})"
        if len(sent.released) > 1:
            out.append(Violation(now, f"{what} released {len(sent.released)} times"))
        due = usable_by(spans, sent.at, DELIVERY_BUDGET_S, now)
        got = sent.released[0] if sent.released else None
        if due is not None and (got is None or got > due + EPS):
            out.append(Violation(now, f"{what} accepted at {sent.at:.3f} was due at the peer "
                                      f"by {due:.3f}; " + (f"released at {got:.3f}" if got
                                                           else "not released yet")))
    for sender in PARTIES:
        # in order per (peer, lane): each lane numbers its own sequence
        for lane in LANES:
            released = sorted((s.cursors[0], s.seq, s.text) for s in world.sent.values()
                              if s.sender == sender and s.lane == lane and s.cursors)
            seqs = [seq for _, seq, _ in released]
            if seqs != sorted(seqs):
                out.append(Violation(now, f"messages from {sender} on the {lane} lane "
                                          "released out of order: "
                                          f"{[t for _, _, t in released]}"))
        # and across lanes in commit order: a bulk message never overtakes a control one
        # accepted before it (the dependency rule, docs/protocol.md §11.1)
        mine = [s for s in world.sent.values() if s.sender == sender and s.cursors]
        for later in (s for s in mine if s.lane == "bulk"):
            for earlier in (s for s in mine if s.lane == "control" and s.at < later.at
                            and s.cursors[0] > later.cursors[0]):
                out.append(Violation(now, f"bulk {later.text!r} released before control "
                                          f"{earlier.text!r}, accepted before it"))
    for call_id, (caller, placed_at) in world.placed.items():
        seen = world.calls.get(call_id)
        due = usable_by(spans, placed_at, DELIVERY_BUDGET_S, now)
        got = seen.first_at if seen is not None else None
        if due is not None and (got is None or got > due + EPS):
            out.append(Violation(now, f"call {call_id[:8]} placed by {caller} at "
                                      f"{placed_at:.3f} was due at the callee by {due:.3f}; "
                                      + (f"seen at {got:.3f}" if got else "not seen yet")))
    out.extend(world.unexpected)
    return out


def ring_deadline(node: SimNode, due: float) -> float | None:
    """By when a ring due at ``due`` (the machine's monotonic time) must have happened:
    within the tolerance, or within it of the restart if the node was stopped before
    that; None while the node is still down."""
    by = due + RING_TOLERANCE_S
    for start, back in node.downs:
        assert start is not None
        if start < by and (back is None or back > due):
            if back is None:
                return None
            by = max(by, back + RING_TOLERANCE_S)
    return by


def _restart_before(node: SimNode, due: float, at: float) -> bool:
    """Whether a ring at ``at``, later than its tolerance after ``due``, came within the
    tolerance after a restart of a node stopped before the ring was overdue."""
    return any(start is not None and back is not None and start < due + RING_TOLERANCE_S
               and back - EPS <= at <= back + RING_TOLERANCE_S + EPS
               for start, back in node.downs)


def rings(world: World, now: float, lateness: list[float] | None = None) -> list[Violation]:
    """Check every call's rings; append the lateness of each ring not excused by a
    restart (its time minus its monotonic due time) to ``lateness``."""
    out: list[Violation] = []
    for seen in world.calls.values():
        what = f"call {seen.call_id[:8]} on {seen.callee}"
        if seen.delivered_at is None:
            if seen.rings:
                out.append(Violation(now, f"{what} rang without being delivered"))
            continue
        problem = _judge(seen, world.nodes[seen.callee], lateness)
        if problem is not None:
            out.append(Violation(now, f"{what}: {problem}; all rings: {_rings(seen)}"))
    return out


def _judge(seen: CallSeen, node: SimNode, lateness: list[float] | None) -> str | None:
    """Walk the rings seen against the chain's schedule (see the module's docstring)."""
    assert seen.delivered_at is not None
    timing, start, end = seen.timing, seen.delivered_at, seen.ended_at
    ring = 0
    for at, step in seen.rings:
        if not timing.has_ring(ring):
            return f"a ring at {at:.3f} after the chain's last"
        due = start + timing.offset(ring) / 1000
        if end is not None and at > end + EPS:
            return f"ring {ring} at {at:.3f} after the call ended at {end:.3f}"
        if at < due - RING_TOLERANCE_S - EPS:
            return f"ring {ring} (due {due:.3f}) rang early at {at:.3f}"
        if at <= due + RING_TOLERANCE_S + EPS:
            late = at - due
        elif _restart_before(node, due, at):
            late = None
            if ring >= timing.steps:  # repeats that fell due while stopped ring once
                while start + timing.offset(ring + 1) / 1000 <= at + EPS:
                    ring += 1
        else:
            return f"ring {ring} (due {due:.3f}) rang late at {at:.3f}"
        if step != timing.step_of(ring):
            return f"ring {ring} rang step {step}, not step {timing.step_of(ring)}"
        if lateness is not None and late is not None:
            lateness.append(late)
        ring += 1
    if not timing.has_ring(ring):
        return None
    due = start + timing.offset(ring) / 1000
    by = ring_deadline(node, due)
    now = node.clock.monotonic()
    if by is not None and by + EPS < now and (end is None or by < end):
        return f"ring {ring} (step {timing.step_of(ring)}) due at {due:.3f} never rang"
    return None


def _rings(seen: CallSeen) -> str:
    start = seen.delivered_at or 0.0
    return ", ".join(f"+{at - start:.3f}s step {step}" for at, step in seen.rings)


async def tasks(world: World, now: float) -> list[Violation]:
    out: list[Violation] = []
    for party, sim in world.nodes.items():
        if not sim.serving:
            continue
        _peers, states, alarms = await world.status(party)
        standing = {a.cause for a in alarms}
        names = {t.name for t in states}
        missing = {"timers", "notifier", "checkpointer", "clock-watch", "link-poller",
                   "desk-reporter", f"sender-{world.peer_of(party)}"} - names
        if missing:
            out.append(Violation(now, f"{party}: tasks missing: {sorted(missing)}"))
        for state in states:
            key = (party, state.name, state.restarts)
            if state.state == "running":
                world.down_since.pop((party, state.name), None)
                continue
            if state.state == "starting":
                # spawned, and not yet stepped by the event loop (a notifier lane is
                # spawned when its channel first has work, so a check can land in
                # between): fine for a moment, a fault if it lasts
                first = world.starting_since.setdefault((party, state.name, sim.up_since),
                                                        now)
                if now - first > STARTING_MAX_S:
                    out.append(Violation(now, f"{party}: task {state.name} has been "
                                              f"starting for {now - first:.1f} s"))
                continue
            if state.state != "restarting":
                out.append(Violation(now, f"{party}: task {state.name} is {state.state}"))
                continue
            since = world.down_since.setdefault((party, state.name), (key, now))[1]
            if world.down_since[(party, state.name)][0] != key:
                world.down_since[(party, state.name)] = (key, now)
                since = now
            if now - since > RESTART_MAX_S + 1:
                out.append(Violation(now, f"{party}: task {state.name} down for "
                                          f"{now - since:.1f} s: {state.last_error}"))
            if now - since > ALARM_AFTER_S and f"task-failed:{state.name}" not in standing:
                out.append(Violation(now, f"{party}: task {state.name} is down without its "
                                          f"alarm: {state.last_error}"))
    return out


async def visible(world: World, now: float) -> list[Violation]:
    out: list[Violation] = []
    broken = world.broken[frozenset(PARTIES)]
    bad_since = broken[-1][0] if broken and broken[-1][1] is None else None
    for party, sim in world.nodes.items():
        if not sim.serving:
            continue
        peers, _tasks, alarms = await world.status(party)
        standing = {a.cause: a for a in alarms}
        line = next(p for p in peers if p.party == world.peer_of(party))
        if bad_since is not None and now - max(bad_since, sim.up_since) >= VISIBLE_AFTER_S \
                and line.queued > 0 and line.state not in ("unreachable", "failing"):
            out.append(Violation(now, f"{party}: the line to {line.party} has been unusable "
                                      f"since {bad_since:.3f} with {line.queued} queued, "
                                      f"but status says {line.state!r}"))
        stepped = world.stepped.get(party)
        if stepped is not None and now - stepped > world.polls.clock_s + ALARM_AFTER_S \
                and "clock-step:" not in standing:
            out.append(Violation(now, f"{party}: its wall clock stepped at {stepped:.3f} "
                                      "and no alarm says so"))
        for hook in HOOKS:
            # the node reports a channel failing at its third failed attempt in a row
            # since it started (notify/runner.py ALARM_AFTER_FAILURES)
            failed = world.webhooks.failing_since(party, hook, nth=ALARM_AFTER_FAILURES,
                                                  after=sim.up_since)
            if failed is not None and now - failed > ALARM_AFTER_S \
                    and f"notification-failed:hook-{hook}" not in standing:
                out.append(Violation(now, f"{party}: webhook hook-{hook} has failed since "
                                          f"{failed:.3f} and no alarm says so"))
    return out


async def all_of(world: World, lateness: list[float] | None = None) -> list[Violation]:
    now = world.now
    return [*deliveries(world, now), *rings(world, now, lateness), *await tasks(world, now),
            *await visible(world, now)]
