"""What a state check finds: one disagreement between a table and the log, named
precisely, with the repair the log allows (or why there is none)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from hotline.protocol.keys import PartyKeys, PublicKeys


@dataclass(frozen=True)
class RepairContext:
    """What a repair may need beyond the database: our party and keys (to seal a
    replacement envelope), the linked peers' keys, and the time of the repair (ms)."""

    me: str
    keys: PartyKeys | None
    peers: dict[str, PublicKeys]
    now_ms: int


@dataclass(frozen=True)
class Change:
    """One column of one row, ``before`` → ``after`` (``before`` None for a row created)."""

    table: str
    row: str
    column: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "row": self.row, "column": self.column,
                "from": self.before, "to": self.after}

    def __str__(self) -> str:
        return f"{self.table} {self.row}: {self.column} {self.before!r} → {self.after!r}"


@dataclass(frozen=True)
class Fix:
    """A repair from the log: the changes it makes (what ``repair --from-log`` shows),
    what the repair's log entry records about it, and how to apply it."""

    changes: tuple[Change, ...]
    apply: Callable[[Connection, RepairContext], None]
    record: dict[str, Any] = field(default_factory=dict)
    needs_keys: bool = False


@dataclass(frozen=True)
class Finding:
    """``check``: the checker's name; ``table`` and ``row``: where the state disagrees
    (``row`` as ``column=value`` pairs); ``message``: what the state and the log say;
    ``log_index``: the entry that says otherwise; ``fix``: None if the log cannot restore
    it (``message`` says why)."""

    check: str
    table: str
    row: str
    message: str
    log_index: int | None = None
    fix: Fix | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "table": self.table, "row": self.row,
                "message": self.message, "log_index": self.log_index,
                "repairable": self.fix is not None,
                "repair": [c.as_dict() for c in self.fix.changes] if self.fix else []}

    def __str__(self) -> str:
        where = "" if self.log_index is None else f" (log entry {self.log_index})"
        return f"{self.table} {self.row}: {self.message}{where}"


@dataclass
class StateReport:
    findings: list[Finding] = field(default_factory=list)
    entries: int = 0
    checks: list[str] = field(default_factory=list)
    #: the log itself does not verify: it is no authority, the state was not checked
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "skipped": self.skipped, "entries_read": self.entries,
                "checks": self.checks,
                "findings": [f.as_dict() for f in self.findings]}
