"""The state of every line, as ``hotline status`` and the operator API report it."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.clock import Clock
from hotline.delivery.sender import PeerHealth
from hotline.health.supervisor import TaskState
from hotline.inbox import iso
from hotline.peers import PeerDirectory
from hotline.store import inbound, outbox
from hotline.store.alarms import AlarmRow
from hotline.store.database import Database


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


@dataclass(frozen=True)
class TaskStatus:
    """One supervised background task: ``running``, ``restarting`` or ``stopped``."""

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


async def line_status(db: Database, peers: PeerDirectory,
                      health: dict[str, PeerHealth], clock: Clock) -> list[PeerStatus]:
    sent, received = await db.read(lambda conn: (outbox.counts(conn), inbound.count(conn)))
    now = clock.now_ms()
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
            unreachable_for_seconds=None if h.unreachable_since is None
            else round((now - h.unreachable_since) / 1000, 1),
            next_attempt_at=iso(h.next_attempt_at), state=_state(counts.queued, h),
            failed_attempts=h.failed_attempts,
            clock_offset_ms=h.clock_offset_ms, clock_offset_error_ms=h.clock_offset_error_ms))
    return out


def task_status(states: list[TaskState]) -> list[TaskStatus]:
    return [TaskStatus(t.name, t.state, iso(t.since), t.restarts, t.last_error)
            for t in states]


def alarm_status(rows: list[AlarmRow]) -> list[AlarmStatus]:
    return [AlarmStatus(a.cause, a.kind, a.subject, a.message, iso(a.first_at),
                        iso(a.last_at), a.count) for a in rows]
