"""Running the checkers, and repairing from the log what they found.

:func:`check_state` is what ``hotline serve`` runs at start-up after the log itself
verifies (a disagreement stops the node as a broken log does), and what ``hotline log
verify`` reports. :func:`repair` applies the fixes the log allows, in one transaction
that also appends one ``repair`` entry listing every change, and leaves the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from hotline.integrity.checks import CHECKERS, Checker
from hotline.integrity.findings import Finding, RepairContext, StateReport
from hotline.integrity.view import LogView, read_log, scan_log, tee
from hotline.log.verify import Report, verify_database
from hotline.protocol.keys import PublicKeys
from hotline.store import log as log_store


def check_state(conn: Connection, me: str,
                checkers: Sequence[tuple[str, Checker]] = CHECKERS) -> StateReport:
    """Every checker over one pass of the log; ``conn`` should hold one snapshot."""
    return _run(conn, read_log(conn, me), checkers)


def check_all(conn: Connection, me: str, keys: dict[str, PublicKeys],
              checkers: Sequence[tuple[str, Checker]] = CHECKERS
              ) -> tuple[Report, StateReport]:
    """The start-up check: the log verified and the state checked against it, in one
    read of the log. A log that does not verify is no authority: the state is then not
    checked (``skipped``)."""
    view = LogView(me)
    report = verify_database(conn, me, keys, entries=tee(view, scan_log(conn)))
    if not report.ok:
        return report, StateReport(entries=view.entries, skipped=True)
    return report, _run(conn, view, checkers)


def _run(conn: Connection, view: LogView, checkers: Sequence[tuple[str, Checker]]
         ) -> StateReport:
    report = StateReport(entries=view.entries)
    for name, checker in checkers:
        report.checks.append(name)
        report.findings.extend(checker(conn, view))
    return report


@dataclass
class RepairResult:
    applied: list[Finding] = field(default_factory=list)
    left: list[Finding] = field(default_factory=list)
    log_index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"applied": [f.as_dict() for f in self.applied],
                "left": [f.as_dict() for f in self.left], "log_index": self.log_index}


def _logged(change: dict[str, Any]) -> dict[str, Any]:
    """A change as the log keeps it: message texts only as their SHA-256 (the log holds
    no message text anywhere)."""
    if change["column"] == "text":
        change = {**change, **{k: None if change[k] is None else
                               hashlib.sha256(str(change[k]).encode()).hexdigest()
                               for k in ("from", "to")}, "column": "text (sha256)"}
    return change


def repair(conn: Connection, findings: list[Finding], ctx: RepairContext) -> RepairResult:
    """Apply every fix in ``findings`` inside the caller's transaction and log them as one
    ``repair`` entry; findings without a fix (or needing keys not given) are left."""
    result = RepairResult()
    body: dict[str, Any] = {"changes": [], "lost": [], "resent": [], "left": []}
    for finding in findings:
        fix = finding.fix
        if fix is None or (fix.needs_keys and ctx.keys is None):
            result.left.append(finding)
            body["left"].append(str(finding)[:300])
            continue
        fix.apply(conn, ctx)
        result.applied.append(finding)
        body["changes"].extend(_logged(c.as_dict()) for c in fix.changes)
        for key in ("lost", "resent"):
            body[key].extend(fix.record.get(key, []))
    if result.applied:
        result.log_index = log_store.append_one(conn, "repair", body, ctx.now_ms)
    return result
