"""The demo's outcome: what the scenario expects, each met or not, as data.

Each step of ``hotline demo`` adds :class:`Outcome` rows (an expected outcome, whether it
was observed, and what was observed) to one list; ``--exit`` (alias ``--check``) prints
them as the summary table and exits 0 only if every one was met. A later feature adds its
own rows to the same list. :func:`verify_logs` gives one row per node: ``hotline log
verify`` (the same check, on the node's own database) once the nodes have stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from hotline.cli.tables import Col, show


@dataclass(frozen=True)
class Outcome:
    """One expected outcome: ``what`` the scenario expects (short: the table's first
    column), ``met`` whether it was observed, ``detail`` what was observed."""

    what: str
    met: bool
    detail: str


def all_met(outcomes: Iterable[Outcome]) -> bool:
    """True if there is at least one outcome and every one was met."""
    seen = list(outcomes)
    return bool(seen) and all(o.met for o in seen)


def summary(console: Console, outcomes: Sequence[Outcome]) -> None:
    """The summary table: expected outcome | met | detail."""
    show(console, [Col("expected outcome", keep=True), Col("met", keep=True), Col("detail")],
         [[o.what, Text("yes", style="green") if o.met else Text("NO", style="bold red"),
           o.detail] for o in outcomes])
    missed = [o for o in outcomes if not o.met]
    if missed:
        console.print(f"[bold red]{len(missed)} of {len(outcomes)} expected outcome(s) "
                      "NOT met[/]")
    else:
        console.print(f"[bold green]All {len(outcomes)} expected outcomes met.[/]")


def verify_logs(nodes: Sequence[tuple[str, Path]]) -> list[Outcome]:
    """``hotline log verify`` on each ``(party, node directory)``: the log recomputed from
    the database and checked against every cosigned checkpoint, then the state the node
    acts on checked against the log. One row per node."""
    from hotline.cli.log import snapshot
    from hotline.integrity.run import check_all

    rows = []
    for party, node_dir in nodes:
        try:
            with snapshot(node_dir) as (me, own, peers, conn):
                report, state = check_all(conn, me, {**peers, me: own})
        except Exception as exc:  # a node's database that cannot be read is a row too
            rows.append(Outcome(f"log verify {party}", False, f"could not run: {exc}"))
            continue
        if not report.ok:
            detail = f"BROKEN: {report.problems[0].message}"
        elif not state.ok:
            detail = f"state disagrees with the log ({len(state.findings)} finding(s))"
        else:
            detail = (f"log OK: {report.size} entries, {report.checkpoints} cosigned "
                      "checkpoint(s); state OK")
        rows.append(Outcome(f"log verify {party}", report.ok and state.ok, detail))
    return rows
