"""The state of every line, as ``hotline status`` and the operator API report it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hotline.clock import Clock, elapsed_ms
from hotline.delivery.sender import PeerHealth
from hotline.health.supervisor import DOWN_STATES, TaskState
from hotline.inbox import iso
from hotline.links.health import UNKNOWN, LinkHealth
from hotline.peers import PeerDirectory
from hotline.protocol.lanes import CONTROL, LANES
from hotline.store import directory as directory_store
from hotline.store import inbound, outbox
from hotline.store.alarms import AlarmRow
from hotline.store.database import Database


@dataclass(frozen=True)
class LaneStatus:
    """One lane of a line: ``queued`` envelopes, the oldest waiting ``oldest_age_s``;
    ``waiting_for_seq``: the seq of this lane we wait on from the peer (its envelopes
    after it are held back), or None."""

    queued: int
    oldest_age_s: float | None
    waiting_for_seq: int | None = None


@dataclass(frozen=True)
class PeerStatus:
    party: str
    name: str
    endpoints: list[str]
    queued: int
    in_flight: int
    delivered: int
    received: int
    last_receipt_at: str | None
    last_received_at: str | None
    last_error: str | None
    last_error_at: str | None
    unreachable_since: str | None
    unreachable_for_seconds: float | None
    next_attempt_at: str | None
    state: str
    #: consecutive failed attempts since the last fully acknowledged batch
    failed_attempts: int = 0
    clock_offset_ms: int | None = None
    clock_offset_error_ms: int | None = None
    #: envelopes that will never be delivered (the link was removed while they waited)
    undeliverable: int = 0
    #: when the link was removed (state "removed"), else None
    removed_at: str | None = None
    #: the gap report: the sequence number we wait on from this peer (envelopes after it
    #: are held back), and the one the peer last said it waits on from us; None if none
    waiting_for_seq: int | None = None
    peer_waiting_for_seq: int | None = None
    # -- link health (hotline.links): from the link tests ------------------------------
    #: up | degraded | down | unknown (no test finished yet)
    health: str = UNKNOWN
    #: the last answered round trip of the current endpoint, in ms
    rtt_ms: float | None = None
    #: the endpoint the sender tries first: the healthiest, in the link's order
    current_endpoint: str | None = None
    last_good_test_at: str | None = None
    #: each endpoint: {endpoint, health, since, last_good_test_at, rtt_ms, last_error}
    endpoint_health: list[dict[str, Any]] = field(default_factory=list)
    #: one sample per test round over the last hour: [wall-clock ms, rtt ms or None]
    rtt_last_hour: list[tuple[int, float | None]] = field(default_factory=list)
    #: the peer's latest desk report: role -> staffed; None before the first report
    desks_staffed: dict[str, bool] | None = None
    # -- lanes (hotline.protocol.lanes) --------------------------------------------------
    #: per lane (``control``, ``bulk``): envelopes waiting for their receipt, and the
    #: age in seconds of the oldest of them (None if none waits)
    lanes: dict[str, LaneStatus] = field(default_factory=dict)
    #: the federation protocol the peer last said it speaks (1: one lane, 2: lanes)
    protocol: int = 1


@dataclass(frozen=True)
class TaskStatus:
    """One supervised background task: ``starting``, ``running``, ``restarting``,
    ``stopped`` or ``stuck`` (:class:`hotline.health.supervisor.TaskState`)."""

    name: str
    state: str
    since: str | None
    restarts: int
    last_error: str | None


@dataclass(frozen=True)
class AlarmStatus:
    """One standing alarm; ``count`` raises coalesced into it since ``first_at``."""

    cause: str
    kind: str
    subject: str | None
    message: str
    first_at: str | None
    last_at: str | None
    count: int


def _state(queued: int, health: PeerHealth) -> str:
    if health.unreachable_since is not None:
        return "unreachable"
    if health.last_error is not None:
        return "failing"
    return "sending" if queued else "idle"


def _link_fields(link: LinkHealth | None, h: PeerHealth, clock: Clock) -> dict[str, Any]:
    """The link-health fields of one peer; the clock offset from the latest link test,
    else from the latest batch's receipts."""
    if link is None:
        return {"clock_offset_ms": h.clock_offset_ms,
                "clock_offset_error_ms": h.clock_offset_error_ms}
    tested = link.clock_offset_ms is not None
    rtt = link.rtt_ms
    return {
        "health": link.state, "rtt_ms": None if rtt is None else round(rtt, 3),
        "current_endpoint": link.current, "last_good_test_at": iso(link.last_good_at),
        "endpoint_health": [
            {"endpoint": e.endpoint, "health": e.state, "since": iso(e.since),
             "last_good_test_at": iso(e.last_good_at),
             "rtt_ms": None if e.rtt_ms is None else round(e.rtt_ms, 3),
             "last_error": e.last_error} for e in link.endpoints.values()],
        "rtt_last_hour": _rtt_last_hour(link, clock),
        "clock_offset_ms": link.clock_offset_ms if tested else h.clock_offset_ms,
        "clock_offset_error_ms": link.clock_offset_error_ms if tested
        else h.clock_offset_error_ms}


def _rtt_last_hour(link: LinkHealth, clock: Clock) -> list[tuple[int, float | None]]:
    """The round trips of the last hour, each at its time on the node's clock *now*:
    counted back from now on the monotonic clock, so that a step of the wall clock since
    neither reorders them nor throws them an hour off the chart (the console's sparkline
    places them by these times)."""
    now_ms, now_mono = clock.now_ms(), clock.monotonic()
    return [(now_ms - round((now_mono - s.mono) * 1000),
             None if s.rtt_ms is None else round(s.rtt_ms, 3))
            for s in link.rtt_history(now_mono)]


async def line_status(db: Database, peers: PeerDirectory,
                      health: dict[str, PeerHealth], clock: Clock,
                      links: Mapping[str, LinkHealth] | None = None) -> list[PeerStatus]:
    """Every line's status; ``links``: the link prober's health per peer, if it runs."""
    sent, received, gaps, desks, loads = await db.read(lambda conn: (
        outbox.counts(conn), inbound.count(conn), inbound.gaps(conn),
        directory_store.desks(conn), outbox.lane_loads(conn)))
    staffed: dict[str, dict[str, bool]] = {}
    for desk in desks:
        staffed.setdefault(desk.party, {})[desk.role] = desk.staffed
    out = []
    for link in sorted(peers.all(), key=lambda link: link.party):
        counts = sent.get(link.party, outbox.OutboxCounts(0, 0, None))
        got, last_in = received.get(link.party, (0, None))
        h = health.get(link.party, PeerHealth())
        out.append(PeerStatus(
            party=link.party, name=link.name, endpoints=list(link.endpoints),
            queued=counts.queued, in_flight=h.in_flight, delivered=counts.delivered,
            received=got, last_receipt_at=iso(counts.last_receipt_at),
            last_received_at=iso(last_in), last_error=h.last_error,
            last_error_at=iso(h.last_error_at), unreachable_since=iso(h.unreachable_since),
            unreachable_for_seconds=None if h.unreachable_since_mono is None
            else round(max(0.0, clock.monotonic() - h.unreachable_since_mono), 1),
            next_attempt_at=iso(h.next_attempt_at), state=_state(counts.queued, h),
            failed_attempts=h.failed_attempts,
            undeliverable=counts.undeliverable,
            waiting_for_seq=gaps.get((link.party, CONTROL)),
            peer_waiting_for_seq=h.peer_waiting_for,
            lanes=_lanes(loads.get(link.party, {}), clock,
                         {lane: gaps.get((link.party, lane)) for lane in LANES}),
            protocol=link.protocol,
            desks_staffed=staffed.get(link.party),
            **_link_fields((links or {}).get(link.party), h, clock)))
    for link in sorted(peers.removed(), key=lambda link: link.party):
        counts = sent.get(link.party, outbox.OutboxCounts(0, 0, None))
        got, last_in = received.get(link.party, (0, None))
        out.append(PeerStatus(
            party=link.party, name=link.name, endpoints=list(link.endpoints),
            queued=counts.queued, in_flight=0, delivered=counts.delivered, received=got,
            last_receipt_at=iso(counts.last_receipt_at), last_received_at=iso(last_in),
            last_error=None, last_error_at=None, unreachable_since=None,
            unreachable_for_seconds=None, next_attempt_at=None, state="removed",
            undeliverable=counts.undeliverable, removed_at=iso(link.removed_at)))
    return out


def _lanes(loads: dict[str, outbox.LaneLoad], clock: Clock,
           gaps: dict[str, int | None]) -> dict[str, LaneStatus]:
    """Each lane's depth and the age of its oldest envelope: from its commit time on our
    wall clock (the one clock a restart keeps), the steps applied since taken out
    (:func:`hotline.clock.elapsed_ms`)."""
    out: dict[str, LaneStatus] = {}
    for lane in LANES:
        load = loads.get(lane)
        if load is None or load.oldest_at is None:
            out[lane] = LaneStatus(0, None, gaps.get(lane))
        else:
            out[lane] = LaneStatus(load.queued,
                                   round(elapsed_ms(clock, load.oldest_at) / 1000, 3),
                                   gaps.get(lane))
    return out


def task_status(states: list[TaskState]) -> list[TaskStatus]:
    return [TaskStatus(t.name, t.state, iso(t.since), t.restarts, t.last_error)
            for t in states]


def tasks_down(tasks: Iterable[TaskStatus]) -> list[TaskStatus]:
    """The tasks that should run and do not (``restarting``: failed, waiting to be
    restarted; ``stuck``: cancelled and still running): ``/healthz``'s ``tasks_down``
    and the console's banner, one definition for both."""
    return [t for t in tasks if t.state in DOWN_STATES]


def alarm_status(rows: list[AlarmRow]) -> list[AlarmStatus]:
    return [AlarmStatus(a.cause, a.kind, a.subject, a.message, iso(a.first_at),
                        iso(a.last_at), a.count) for a in rows]
