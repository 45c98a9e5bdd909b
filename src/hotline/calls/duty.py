"""Who is on duty: the one answer, for every part of the node.

The escalation engine (who a ring reaches), desk staffing (is a desk staffed), the
hand-over watch, the operator API, the console and ``hotline schedule`` all ask the
functions here, so they cannot disagree. The answer is the *final schedule* of a role
(:mod:`hotline.schedules.final`): the directory's ``[schedules.<role>]`` layers, over the
legacy ``[[roster]]`` entries as the lowest layer, under the overrides, which live in
their own table (``store/schedules.py``) so that applying a directory keeps them.

All instants are calendar instants: integer milliseconds since the Unix epoch (UTC),
``until`` exclusive, read on the node's wall clock (``clock.SteadyWall``).

Who may add an override (:meth:`DutyService.take_shift`): the administrator (the node's
token file, the local CLI), for any operator in any role the operator holds; an operator,
only for themself, only in a role the directory gives them now and only for a window
not yet over (on duty: taking a shift; ``unavailable``: giving one up). Each override is
an entry of kind ``duty-override`` in the tamper-evident log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from hotline.bounds import MAX_TIME_MS
from hotline.calls.directory import Directory
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.errors import HotlineError
from hotline.schedules.model import Override, Shift
from hotline.store import log as log_store
from hotline.store import schedules as schedule_store
from hotline.store.database import Database
from hotline.store.schedules import OverrideRow

#: The longest range one final-schedule question may span (a year and a day): a range is
#: computed shift by shift, so an unbounded one would be unbounded work.
MAX_RANGE_MS = 367 * 24 * 3600 * 1000
#: An override without an end (``POST /api/v1/roster`` without ``until_ms``) lasts past
#: the largest time the node accepts.
OPEN_END_MS = MAX_TIME_MS + 1


def as_override(row: OverrideRow) -> Override:
    return Override(id=str(row.id), role=row.role, operator=row.operator, from_ms=row.from_ms,
                    until_ms=row.until_ms, unavailable=row.unavailable)


def overrides(conn: Connection, role: str, from_ms: int, until_ms: int) -> list[Override]:
    """The overrides of ``role`` that overlap ``[from_ms, until_ms)``, oldest first."""
    return [as_override(r) for r in schedule_store.overrides(
        conn, role, until_after=from_ms, from_before=until_ms)]


def on_duty(conn: Connection, directory: Directory, role: str, at_ms: int, *,
            field: str = "at_ms") -> tuple[str, ...]:
    """THE answer: the operators on duty in ``role`` at ``at_ms``, sorted (``()``: a gap,
    or a role with nobody on duty). Reads the overrides in ``conn``'s transaction.
    Raises ``bad-range`` (400) naming ``field`` for an instant too far to compute."""
    if role not in directory.roles:
        return ()
    found = overrides(conn, role, at_ms, at_ms + 1)
    try:
        return directory.on_duty(role, at_ms, found)
    except ValueError as exc:
        raise too_far(field, exc) from None


def final(conn: Connection, directory: Directory, role: str, from_ms: int, until_ms: int,
          *, field: str = "until_ms") -> list[Shift]:
    """The final schedule of ``role`` over ``[from_ms, until_ms)``: consecutive shifts,
    gaps included as ``Shift(holders=(), source="gap")``. Raises ``bad-range`` (400),
    naming ``field`` for a range too far to compute."""
    check_range(from_ms, until_ms)
    if role not in directory.roles:
        raise no_role(role)
    found = overrides(conn, role, from_ms, until_ms)
    try:
        return directory.final_schedule(role, from_ms, until_ms, found)
    except ValueError as exc:
        raise too_far(field, exc) from None


def too_far(field: str, exc: ValueError) -> HotlineError:
    """An instant the final schedule cannot be computed at (a turn past the year 9999, an
    RRULE a million hand-overs past its start): a refusal, not a crash."""
    return HotlineError("bad-range", f"{field}: too far to compute the schedule: {exc}",
                        hint="ask about a time nearer the schedule's layers", status=400)


def check_range(from_ms: int, until_ms: int) -> None:
    if not 0 <= from_ms < until_ms <= MAX_TIME_MS:
        raise HotlineError("bad-range", "until_ms: must be after from_ms (and both between "
                                        "1970 and the year 9999)", status=400)
    if until_ms - from_ms > MAX_RANGE_MS:
        raise HotlineError("bad-range", "until_ms: at most 367 days after from_ms",
                           status=400)


def no_role(role: str) -> HotlineError:
    return HotlineError("no-role", f"role: there is no role {role!r} in this node's "
                                   "directory", hint="see `hotline roles apply`", status=404)


@dataclass(frozen=True)
class OverrideRequest:
    """An override to add: see :func:`check_override`."""

    role: str
    operator: str
    from_ms: int
    until_ms: int
    unavailable: bool


def check_override(directory: Directory, request: OverrideRequest) -> None:
    """The operator exists and holds the role, and the window is a window; else
    ``bad-override`` (400) naming the field. Nothing is stored before this passed."""
    if request.role not in directory.roles:
        raise HotlineError("bad-override", f"role: there is no role {request.role!r} in "
                                           "this node's directory", status=400)
    op = directory.operators.get(request.operator)
    if op is None:
        raise HotlineError("bad-override", f"operator: there is no operator "
                                           f"{request.operator!r} in the directory",
                           status=400)
    if request.role not in op.roles:
        raise HotlineError("bad-override", f"role: operator {request.operator!r} does not "
                                           f"hold role {request.role!r} (their roles: "
                                           f"{', '.join(op.roles) or 'none'})", status=400)
    if request.from_ms < 0:
        raise HotlineError("bad-override", "from_ms: is before 1970", status=400)
    if not request.from_ms < request.until_ms <= OPEN_END_MS:
        raise HotlineError("bad-override", "until_ms: must be after from_ms", status=400)


def add_override(conn: Connection, directory: Directory, request: OverrideRequest, by: str,
                 now_ms: int) -> OverrideRow:
    """Check and store one override, with its log entry, in ``conn``'s transaction."""
    check_override(directory, request)
    row = schedule_store.add_override(
        conn, role=request.role, operator=request.operator, from_ms=request.from_ms,
        until_ms=request.until_ms, unavailable=request.unavailable, created_by=by,
        now_ms=now_ms)
    log_store.append_one(conn, "duty-override", {
        "id": row.id, "role": row.role, "operator": row.operator, "from_ms": row.from_ms,
        "until_ms": row.until_ms, "unavailable": row.unavailable, "by": by},
        now_ms, subject=row.role)
    return row


class DutyService:
    """The node's duty questions for its edges (operator API, console): the final schedule
    of a role over a range, who holds it at an instant, and taking a shift."""

    def __init__(self, *, registry: Registry, db: Database, clock: Clock) -> None:
        self._registry = registry
        self._db = db
        self._clock = clock

    def now_ms(self) -> int:
        return self._clock.now_ms()

    async def who(self, role: str, at_ms: int | None = None) -> tuple[str, ...]:
        """The operators on duty in ``role`` at ``at_ms`` (default: now)."""
        await self._registry.reload()
        directory = self._registry.current
        if role not in directory.roles:
            raise no_role(role)
        at = self._clock.now_ms() if at_ms is None else at_ms
        return await self._db.read(lambda conn: on_duty(conn, directory, role, at,
                                                        field="at_ms"))

    async def final_schedule_for(self, role: str, from_ms: int, until_ms: int
                                 ) -> list[Shift]:
        """The final schedule of ``role`` over ``[from_ms, until_ms)`` (see :func:`final`);
        what the console shows for the next 14 days, gaps as ``source == "gap"``."""
        check_range(from_ms, until_ms)
        await self._registry.reload()
        directory = self._registry.current
        return await self._db.read(lambda conn: final(conn, directory, role, from_ms,
                                                      until_ms))

    async def overrides(self, role: str, from_ms: int, until_ms: int
                        ) -> Sequence[OverrideRow]:
        return await self._db.read(lambda conn: schedule_store.overrides(
            conn, role, until_after=from_ms, from_before=until_ms))

    async def take_shift(self, role: str, operator: str, from_ms: int | None,
                         until_ms: int | None, *, unavailable: bool = False,
                         by: str = "admin") -> OverrideRow:
        """Add an override: ``operator`` holds ``role`` over the window (or, with
        ``unavailable``, does not). ``from_ms`` defaults to now, ``until_ms`` to
        :data:`OPEN_END_MS`. The caller (the edge) has checked who may (module doc);
        here the directory is checked (``bad-override``, 400, nothing stored), and an
        operator's (``by`` not ``"admin"``) window must not have ended already."""
        await self._registry.reload()
        directory = self._registry.current
        now = self._clock.now_ms()
        request = OverrideRequest(role, operator, now if from_ms is None else from_ms,
                                  OPEN_END_MS if until_ms is None else until_ms, unavailable)
        check_override(directory, request)
        if by != "admin" and request.until_ms <= now:
            # An operator takes or gives up shifts to come: who held a role in the past is
            # the record (hand-overs were logged and rung), not theirs to rewrite.
            raise HotlineError("bad-override", "until_ms: is in the past; an operator "
                                               "changes only shifts to come", status=400)
        return await self._db.write(
            lambda conn: add_override(conn, directory, request, by, now))
