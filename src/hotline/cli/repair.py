"""``hotline repair --from-log``: put back the state the log is authoritative for.

Run with the node stopped. It verifies the log (a log that does not verify is no
authority: nothing is changed), runs the state check, shows every change it would make
(table, row, from → to) and what it cannot restore, and asks; ``--yes`` applies without
asking. All changes and one ``repair`` log entry listing them commit together.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from hotline.cli.common import DirOption, JsonOption, out, print_json
from hotline.errors import HotlineError

if TYPE_CHECKING:
    from hotline.integrity.findings import Finding
    from hotline.log.verify import Report
    from hotline.protocol.keys import PartyKeys


def repair_cmd(node_dir: DirOption,
               from_log: Annotated[bool, typer.Option(
                   "--from-log", help="Repair from the log (the only source there is).")]
               = False,
               yes: Annotated[bool, typer.Option(
                   "--yes", help="Apply without asking.")] = False,
               as_json: JsonOption = False) -> None:
    """Show what the log can restore of a state that disagrees with it, and restore it."""
    if not from_log:
        raise HotlineError("repair-source", "say where to repair from: --from-log",
                           hint="hotline repair --from-log --dir DIR", status=2)
    from hotline.integrity.findings import RepairContext
    from hotline.integrity.run import check_state, repair
    from hotline.log.verify import verify_database
    from hotline.nodedir.config import KEYSTORE_NAME, load_config
    from hotline.nodedir.keystore import read_public
    from hotline.nodedir.lock import held
    from hotline.store import links as link_store
    from hotline.store.engine import create_engine
    from hotline.store.migrate import upgrade

    if held(node_dir):  # a running node writes the state this would repair
        raise HotlineError("node-running", f"a node runs on {node_dir}",
                           hint="stop `hotline serve` first; repair runs on a stopped node")
    config = load_config(node_dir)
    own = read_public(node_dir / KEYSTORE_NAME)
    engine = create_engine(config.db)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            peers = {link.party: link.keys for link in link_store.all_links(conn)}
            me = config.party
            state = check_state(conn, me)
            columns = [f for f in state.findings if f.check == "log-columns"]
            ctx = RepairContext(me, None, peers, _now())
            if not verify_database(conn, me, {**peers, me: own}).ok:
                # the kind column is part of what the log's verification reads: put the
                # columns back first, then the log must verify before it is trusted further
                fixes = [f for f in columns if f.fix is not None]
                if not fixes:
                    _refuse_broken(verify_database(conn, me, {**peers, me: own}))
                _show(fixes, as_json)
                if not _agreed(yes, as_json, fixes):
                    return
                first = repair(conn, fixes, ctx)
                if not as_json:
                    out.print(f"Repaired the log's columns first ({len(first.applied)} "
                              f"finding(s)); logged as entry {first.log_index}.",
                              highlight=False)
                _refuse_broken(verify_database(conn, me, {**peers, me: own}))
                state = check_state(conn, me)
            fixable = [f for f in state.findings if f.fix is not None]
            _show(state.findings, as_json)
            if not fixable:
                if state.ok:
                    if as_json:
                        print_json({"applied": [], "plan": []})
                    else:
                        out.print("State OK: nothing (more) to repair.")
                    return
                raise HotlineError("state-unrepairable", "nothing of what disagrees can be "
                                   "restored from the log", hint="see the findings above")
            if not _agreed(yes, as_json, state.findings):
                return
            keys = _keys(node_dir) if any(f.fix and f.fix.needs_keys for f in fixable) \
                else None
            result = repair(conn, state.findings, RepairContext(me, keys, peers, _now()))
        if as_json:
            print_json(result.as_dict())
        else:
            out.print(f"Repaired {len(result.applied)} finding(s); logged as entry "
                      f"{result.log_index}.", highlight=False)
            for f in result.left:
                out.print(f"[bold yellow]LEFT[/] {escape(str(f))}", highlight=False)
        if result.left:
            raise HotlineError("state-unrepairable", f"{len(result.left)} finding(s) could not "
                               "be restored from the log", hint="see LEFT above; the node "
                               "refuses to serve until they are dealt with (or serve with "
                               "--accept-broken-log)")
    finally:
        engine.dispose()


def _agreed(yes: bool, as_json: bool, findings: list[Finding]) -> bool:
    """Whether to apply: ``--yes``, or the operator says so; with ``--json`` and no
    ``--yes``, the plan is printed and nothing applied."""
    if yes:
        return True
    if as_json:
        print_json({"applied": [], "plan": [f.as_dict() for f in findings]})
        return False
    if not typer.confirm("Apply these changes?"):
        raise typer.Abort()
    return True


def _refuse_broken(report: Report) -> None:
    if not report.ok:
        raise HotlineError("log-broken", "the log does not verify, so it cannot be repaired "
                           f"from: {report.problems[0].message}",
                           hint="keep a copy of the database as it is for investigation")


def _now() -> int:
    from hotline.clock import SystemClock

    return SystemClock().now_ms()


def _keys(node_dir: Path) -> PartyKeys:
    from hotline.cli.passphrase import get_passphrase
    from hotline.nodedir.config import KEYSTORE_NAME
    from hotline.nodedir.keystore import unlock

    return unlock(node_dir / KEYSTORE_NAME, get_passphrase())


def _show(findings: list[Finding], as_json: bool) -> None:
    if as_json:
        return
    for f in findings:
        if f.fix is None:
            out.print(f"[bold red]CANNOT RESTORE[/] {escape(str(f))}", highlight=False)
            continue
        out.print(f"[bold]{escape(str(f))}[/]", highlight=False)
        for change in f.fix.changes:
            out.print(f"  will change {escape(str(change))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("repair")(repair_cmd)
