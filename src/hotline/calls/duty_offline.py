"""``hotline schedule``'s side of the duty functions: the node's database, opened directly.

Like ``hotline roles apply`` and ``hotline operator``, these work whether or not the node
runs, and they ask the very functions the node asks (:mod:`hotline.calls.duty`) of the
very rows it reads (the newest directory version, the overrides), so ``schedule who`` and
the ring of an escalation cannot disagree. An override added here is logged (``by``:
``cli``) and a running node acts on it at its next ring or check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine

from hotline.calls import duty, registry
from hotline.calls.directory import Directory
from hotline.clock import SystemClock
from hotline.nodedir.config import load_config
from hotline.schedules.model import Schedule, Shift
from hotline.store import schedules as schedule_store
from hotline.store.engine import create_engine
from hotline.store.migrate import upgrade
from hotline.store.schedules import OverrideRow

T = TypeVar("T")


@dataclass(frozen=True)
class RoleSchedule:
    """What ``schedule show`` prints: the final shifts, and what made them."""

    role: str
    zone: str
    schedule: Schedule | None
    shifts: list[Shift]
    overrides: list[OverrideRow]
    version: int
    #: ids of the overrides the final schedule leaves out: they put on duty an operator
    #: whom the directory (changed since they were made) no longer gives the role
    ignored: frozenset[int] = frozenset()


@contextmanager
def _engine(node_dir: Path) -> Iterator[Engine]:
    config = load_config(node_dir)
    engine = create_engine(config.db)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _read(node_dir: Path, work: Callable[[Connection, int, Directory], T]) -> T:
    with _engine(node_dir) as engine, engine.connect() as conn:
        version, directory = registry.load(conn)
        return work(conn, version, directory)


def now_ms() -> int:
    return SystemClock().now_ms()


def zone_of(directory: Directory, role: str) -> str:
    schedule = directory.schedules.get(role)
    return "UTC" if schedule is None else schedule.zone


def role_zone(node_dir: Path, role: str) -> str:
    """The zone ``role``'s schedule runs in (UTC for a role without one); ``no-role``."""
    def work(_conn: Connection, _version: int, directory: Directory) -> str:
        if role not in directory.roles:
            raise duty.no_role(role)
        return zone_of(directory, role)
    return _read(node_dir, work)


def holds(node_dir: Path, operator: str, role: str) -> bool:
    """Whether the directory has ``operator`` and gives them ``role``."""
    def work(_conn: Connection, _version: int, directory: Directory) -> bool:
        op = directory.operators.get(operator)
        return op is not None and role in op.roles
    return _read(node_dir, work)


def role_holders(node_dir: Path, role: str) -> frozenset[str]:
    """The operators the directory gives ``role``."""
    def work(_conn: Connection, _version: int, directory: Directory) -> frozenset[str]:
        return frozenset(op_id for op_id, op in directory.operators.items()
                         if role in op.roles)
    return _read(node_dir, work)


def show(node_dir: Path, role: str, from_ms: int, until_ms: int) -> RoleSchedule:
    """The final schedule and what made it; ``bad-range`` names ``--to`` when too far."""
    def work(conn: Connection, version: int, directory: Directory) -> RoleSchedule:
        shifts = duty.final(conn, directory, role, from_ms, until_ms, field="--to")
        rows = schedule_store.overrides(conn, role, until_after=from_ms,
                                        from_before=until_ms)
        # the rule of Directory.final_schedule: an operator's override counts while the
        # directory gives them the role (an "unavailable" one always)
        holds = {op_id for op_id, op in directory.operators.items() if role in op.roles}
        ignored = frozenset(r.id for r in rows if not r.unavailable
                            and r.operator not in holds)
        return RoleSchedule(role, zone_of(directory, role), directory.schedules.get(role),
                            shifts, rows, version, ignored)
    return _read(node_dir, work)


def who(node_dir: Path, role: str, at_ms: int) -> tuple[str, Shift]:
    """The zone of the role's schedule and the shift that holds ``at_ms``."""
    def work(conn: Connection, _version: int, directory: Directory) -> tuple[str, Shift]:
        # the shift holding the instant: its holders are what duty.on_duty answers
        return zone_of(directory, role), duty.final(conn, directory, role, at_ms,
                                                    at_ms + 1, field="--at")[0]
    return _read(node_dir, work)


def add_override(node_dir: Path, request: duty.OverrideRequest) -> OverrideRow:
    """Check (``bad-override``, ``no-role``: nothing stored) and store one override, with
    its log entry, on the newest directory version."""
    from hotline.admin import _write_retrying

    now = now_ms()
    with _engine(node_dir) as engine:
        def work(conn: Connection) -> OverrideRow:
            _version, directory = registry.load(conn)
            return duty.add_override(conn, directory, request, "cli", now)
        return _write_retrying(engine, work)
