"""What must hold of a simulated run, judged from what the world recorded.

* **Messages** (:func:`deliveries`): every message an operator handed to a node is
  released at the peer exactly once, in the order accepted, and within
  :data:`DELIVERY_BUDGET_S` of the line becoming usable again — both nodes up, the link
  not cut, their wall clocks inside the skew window — once it stays usable that long.
  The same for a call's ``call.place``: the callee's node sees the call by then.
* **Escalation** (:func:`rings`): on the callee's node, ring ``k`` of a call's chain is
  due at the monotonic time the call was delivered plus ``Timing.offset(k)``. Each ring
  happens once, in order, with the chain's step, within :data:`RING_TOLERANCE_S` of
  that due time. A ring that fell due while the node was stopped happens within the same
  tolerance of its restart instead; repeats of the last step that fell due during one
  stop coalesce into one ring (the engine's documented rule). No ring after the call
  ended. A ring due within the tolerance of "now" or of the call's end may still be
  missing.
* **Tasks** (:func:`tasks`): every supervised task of a running node is running, or
  restarting for less than the supervisor's longest backoff, and a task that is down
  has its ``task-failed`` alarm standing.
* **Visible failures** (:func:`visible`): a line that has been unusable long enough for
  the sender to have tried, with envelopes queued, shows as ``unreachable`` or
  ``failing`` in ``status``; a notification channel that failed (error or time-out) and
  has not delivered since has its ``notification-failed`` alarm standing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hotline.health.supervisor import RESTART_MAX_S
from tests.sim.harness import HOOKS, PARTIES, CallSeen, SimNode, Violation, World

DELIVERY_BUDGET_S = 30.0
RING_TOLERANCE_S = 1.0
EPS = 1e-6
#: How long after a line fails its sender must show it: one backoff (30 s) and a margin.
VISIBLE_AFTER_S = 35.0
#: How long a failed notification may go unalarmed (the alarm's own write).
ALARM_AFTER_S = 1.0

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
        released = sorted((s.released[0], s.seq, s.text) for s in world.sent.values()
                          if s.sender == sender and s.released)
        seqs = [seq for _, seq, _ in released]
        if seqs != sorted(seqs):
            out.append(Violation(now, f"messages from {sender} released out of order: "
                                      f"{[t for _, _, t in released]}"))
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


@dataclass(frozen=True)
class Expected:
    ring: int
    step: int
    due: float
    lo: float
    hi: float
    optional: bool
    excused: bool  # due while the node was down: judged from its restart


def expected_rings(seen: CallSeen, node: SimNode, now: float) -> list[Expected]:
    assert seen.delivered_at is not None
    timing, start = seen.timing, seen.delivered_at
    end = seen.ended_at
    horizon = now if end is None else min(now, end)
    out: list[Expected] = []
    ring = 0
    while timing.has_ring(ring):
        due = start + timing.offset(ring) / 1000
        if due > horizon + RING_TOLERANCE_S or (end is not None and due > end):
            break
        down = node.down_at(due)
        if down is None:
            lo, hi, excused = due - RING_TOLERANCE_S, due + RING_TOLERANCE_S, False
            last = ring
        else:
            back = down[1]
            if back is None:
                break  # still down: it rings when the node is back
            last = ring
            if ring >= timing.steps:  # repeats due during one stop ring once
                while start + timing.offset(last + 1) / 1000 < back:
                    last += 1
            lo, hi, excused = back, back + RING_TOLERANCE_S, True
        optional = hi > horizon or (end is not None and due > end - RING_TOLERANCE_S)
        out.append(Expected(last, timing.step_of(last), due, lo, hi, optional, excused))
        ring = last + 1
    return out


def rings(world: World, now: float, lateness: list[float] | None = None) -> list[Violation]:
    """Check every call's rings; append the lateness of each on-time ring (its time minus
    its monotonic due time) to ``lateness``."""
    out: list[Violation] = []
    for seen in world.calls.values():
        if seen.delivered_at is None:
            if seen.rings:
                out.append(Violation(now, f"call {seen.call_id[:8]} rang without being "
                                          "delivered"))
            continue
        node = world.nodes[seen.callee]
        expected = expected_rings(seen, node, now)
        what = f"call {seen.call_id[:8]} on {seen.callee}"
        observed = seen.rings
        for index, exp in enumerate(expected):
            if index >= len(observed):
                if not exp.optional:
                    out.append(Violation(now, f"{what}: ring {exp.ring} (step {exp.step}) due "
                                              f"at {exp.due:.3f} never rang"))
                break
            at, step = observed[index]
            if step != exp.step or not exp.lo - EPS <= at <= exp.hi + EPS:
                out.append(Violation(now, f"{what}: ring {exp.ring} (step {exp.step}, due "
                                          f"{exp.due:.3f}, allowed {exp.lo:.3f}..{exp.hi:.3f})"
                                          f" rang as step {step} at {at:.3f}; all rings: "
                                          f"{_rings(seen)}"))
                break
            if lateness is not None and not exp.excused:
                lateness.append(at - exp.due)
        else:
            if len(observed) > len(expected):
                out.append(Violation(now, f"{what}: {len(observed) - len(expected)} ring(s) "
                                          f"more than due (ended {seen.ended_at}); all rings: "
                                          f"{_rings(seen)}"))
    return out


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
    spans = world.lines[frozenset(PARTIES)]
    bad_since = _bad_since(spans, world.started_at, now)
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
        for hook in HOOKS:
            failed = world.webhooks.failing_since(party, hook)
            if failed is not None and now - failed > ALARM_AFTER_S \
                    and f"notification-failed:hook-{hook}" not in standing:
                out.append(Violation(now, f"{party}: webhook hook-{hook} has failed since "
                                          f"{failed:.3f} and no alarm says so"))
    return out


def _bad_since(spans: Sequence[Span], started: float, now: float) -> float | None:
    """Since when the line has been unusable (None: it is usable now)."""
    if spans and spans[-1][1] is None:
        return None
    if not spans:
        return started
    end = spans[-1][1]
    assert end is not None
    return end


async def all_of(world: World, lateness: list[float] | None = None) -> list[Violation]:
    now = world.now
    return [*deliveries(world, now), *rings(world, now, lateness), *await tasks(world, now),
            *await visible(world, now)]
