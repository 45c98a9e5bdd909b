"""``hotline`` commands for the tamper-evident log and the evidence exported from it.

``log verify`` and ``export evidence`` read the node's database directly (like ``link
list``), so they work whether or not the node is running; each reads one consistent
snapshot, so a running node appending meanwhile is not mistaken for tampering.
``verify-bundle`` is for a third party: it needs the bundle file and, ideally, a keys
file obtained independently, and nothing of a node.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from hotline.cli.common import DirOption, JsonOption, err, out, print_json
from hotline.cli.tables import Col, show
from hotline.errors import HotlineError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from hotline.integrity.findings import StateReport
    from hotline.log.evidence import BundleReport
    from hotline.protocol.keyhistory import KeyHistory
    from hotline.protocol.keys import PublicKeys

log_app = typer.Typer(no_args_is_help=True, help="The node's tamper-evident log.")
export_app = typer.Typer(no_args_is_help=True, help="Export evidence for third parties.")


@contextmanager
def snapshot(node_dir: Path) -> Iterator[tuple[str, PublicKeys, dict[str, PublicKeys],
                                                Connection]]:
    """Open the node's database offline and read in one snapshot.

    Yields our party, our public keys (from the keystore, no passphrase needed), the
    linked peers' keys and the connection. SQLite's Python driver starts no transaction
    for reads, so one is begun explicitly: otherwise entries a running node appends
    between reading the log's state and scanning its rows would look added behind its back.
    """
    from hotline.nodedir.config import KEYSTORE_NAME, load_config
    from hotline.nodedir.keystore import read_public
    from hotline.store import links as link_store
    from hotline.store.engine import create_engine
    from hotline.store.migrate import upgrade

    config = load_config(node_dir)
    own = read_public(node_dir / KEYSTORE_NAME)
    engine = create_engine(config.db)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
            else:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            peers = link_store.known_keys(conn)
            yield config.party, own, peers, conn
            conn.rollback()
    finally:
        engine.dispose()


@log_app.command("verify")
def log_verify(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Recompute the log from the database and check it against every cosigned
    checkpoint; names the first entry where it breaks (exit 1). Then check the state the
    node acts on against the log (docs/log.md); names every disagreement (exit 1)."""
    from hotline.integrity.run import check_all

    with snapshot(node_dir) as (me, own, peers, conn):
        report, state = check_all(conn, me, {**peers, me: own})
    if as_json:
        print_json({**report.as_dict(), "state": state.as_dict()})
    elif report.ok:
        out.print(f"Log OK: {report.size} entries, root {report.root}, "
                  f"{report.checkpoints} cosigned checkpoint(s) checked.", highlight=False)
    else:
        for problem in report.problems:
            where = "" if problem.index is None else f"entry {problem.index}: "
            out.print(f"[bold red]BROKEN[/] {escape(where + problem.message)}",
                      highlight=False)
    if not as_json:
        print_state(state)
    if not report.ok:
        first = report.problems[0].index
        at = "" if first is None else f" at entry {first}"
        raise HotlineError("log-broken", f"the log does not verify{at}",
                           hint="the database was changed outside the node; keep a copy of "
                                "it as it is for investigation")
    if not state.ok:
        raise HotlineError("state-disagrees", f"the node's state disagrees with its log "
                                              f"({len(state.findings)} finding(s))",
                           hint="`hotline repair --from-log --dir DIR` shows what the log "
                                "can restore and asks before changing anything")


def print_state(state: StateReport) -> None:
    if state.skipped:
        out.print("State not checked: the log it would be checked against does not verify.")
        return
    if state.ok:
        out.print(f"State OK: {', '.join(state.checks)} agree with the log.",
                  highlight=False)
        return
    for f in state.findings:
        fix = "repairable" if f.fix is not None else "not repairable"
        out.print(f"[bold red]STATE[/] {escape(str(f))} [{fix}]", highlight=False)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@log_app.command("evidence")
def log_evidence(node_dir: DirOption, as_json: JsonOption = False,
                 peer: Annotated[str | None, typer.Option(
                     "--peer", help="Only evidence against this party.")] = None,
                 limit: Annotated[int, typer.Option(
                     min=1, max=10_000, help="Most rows shown, newest first.")] = 100,
                 ) -> None:
    """Evidence kept against peers: one row per distinct conflicting pair, with how many
    times it was presented and when first and last (newest first)."""
    from hotline.store import evidence as evidence_store

    with snapshot(node_dir) as (_me, _own, _peers, conn):
        rows = evidence_store.listing(conn, limit, peer)
    if as_json:
        print_json({"evidence": [r.as_dict() for r in rows]})
        return
    if not rows:
        out.print("No evidence kept.")
        return
    show(out, [Col("#", keep=True), Col("peer", keep=True), Col("kind", keep=True),
               Col("times", keep=True), Col("first (UTC)", keep=True, drop=1),
               Col("last (UTC)", keep=True), Col("detail")],
         [[str(r.id), r.peer, r.kind, str(r.count), _when(r.first_at), _when(r.last_at),
           r.detail] for r in rows])


def _parse_time(text: str, option: str) -> int:
    """ISO 8601 (a time without a zone is UTC) or milliseconds since the epoch."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise HotlineError("bad-option", f"{option} {text!r} is not an ISO 8601 time",
                           hint="e.g. 2022-11-15T15:40:00Z", status=2) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@export_app.command("evidence")
def export_evidence(
        node_dir: DirOption,
        call: Annotated[str | None, typer.Option("--call", help="A call id.")] = None,
        conversation: Annotated[str | None, typer.Option(
            "--conversation", help="A conversation id.")] = None,
        incident: Annotated[str | None, typer.Option(
            "--incident", help="An incident id.")] = None,
        start: Annotated[str | None, typer.Option(
            "--from", help="Start of a time range (ISO 8601, UTC unless a zone is given).")]
        = None,
        end: Annotated[str | None, typer.Option("--to", help="End of the time range.")]
        = None,
        out_file: Annotated[Path | None, typer.Option(
            "--out", help="Write the bundle to this file instead of stdout.")] = None) -> None:
    """Write an evidence bundle for a call, a conversation, an incident or a time range: the log's
    entries with inclusion proofs against a checkpoint a peer cosigned, and the keys
    needed to check them. Anyone can check it with `hotline verify-bundle`."""
    from hotline.clock import SystemClock
    from hotline.log.evidence import export_bundle
    from hotline.log.evidence import verify_bundle as check

    if sum([call is not None, conversation is not None, incident is not None,
            start is not None or end is not None]) != 1:
        raise HotlineError("bad-option", "give exactly one of --call, --conversation, "
                                         "--incident, or "
                                         "--from with --to", status=2)
    if (start is None) != (end is None):
        raise HotlineError("bad-option", "a time range needs both --from and --to", status=2)
    start_ms = None if start is None else _parse_time(start, "--from")
    end_ms = None if end is None else _parse_time(end, "--to")
    with snapshot(node_dir) as (me, own, peers, conn):
        bundle = export_bundle(conn, me=me, own_public=own, peer_keys=peers, call=call,
                               conversation=conversation, start_ms=start_ms, end_ms=end_ms,
                               now_ms=SystemClock().now_ms(), incident=incident)
        trusted = {**peers, me: own}
    # An intact log can still give a bundle that fails, e.g. when a peer signed with a key
    # it has since replaced (the links table holds only its current key): say so now,
    # before anyone relies on the bundle.
    report = check(bundle, trusted)
    text = json.dumps(bundle, ensure_ascii=False, indent=2) + "\n"
    if out_file is None:
        sys.stdout.write(text)
    else:
        try:
            out_file.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise HotlineError("unwritable-file",
                               f"cannot write {out_file}: {exc.strerror}") from None
    witnesses = sorted({c["witness"] for c in bundle["cosignatures"]})
    where = "stdout" if out_file is None else str(out_file)
    for problem in report.problems:
        err.print(f"[yellow]warning[/]: the bundle will not verify: {escape(problem)}",
                  highlight=False)
    err.print(f"Evidence from {me}: {len(bundle['entries'])} entries, checkpoint of size "
              f"{bundle['checkpoint']['size']} cosigned by {', '.join(witnesses)}; written to "
              f"{escape(where)}.", highlight=False)


@export_app.command("keys")
def export_keys(node_dir: DirOption, out_file: Annotated[Path | None, typer.Option(
        "--out", help="Write the keys file here instead of stdout.")] = None) -> None:
    """Write a keys file for `hotline verify-bundle --keys`: this party's and every linked
    peer's current signing key with its signed key history (rotations, revocations), so a
    bundle signed under an older key still verifies against the key in force now."""
    from hotline.protocol.keys import b64e
    from hotline.store import keys as key_store

    with snapshot(node_dir) as (me, own, peers, conn):
        keys: dict[str, Any] = {}
        for party, public in sorted({**peers, me: own}.items()):
            current = public
            if party == me:
                history = key_store.load(conn, me, fallback=own)
                if history is not None and history.current is not None:
                    current = history.current.keys
            entry: dict[str, Any] = {"sign": b64e(current.sign_bytes), "kid": current.key_id}
            exported = key_store.export_history(conn, party)
            if exported is not None:
                entry["history"] = exported
            keys[party] = entry
    text = json.dumps(keys, ensure_ascii=False, indent=2) + "\n"
    if out_file is None:
        sys.stdout.write(text)
        return
    try:
        out_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HotlineError("unwritable-file", f"cannot write {out_file}: {exc.strerror}") from None
    err.print(f"Keys of {', '.join(keys)} written to {escape(str(out_file))}; check them "
              "with each party out of band before relying on them.", highlight=False)


def _read(path: Path, what: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise HotlineError("unreadable-file",
                           f"cannot read the {what} {path}: {exc.strerror}") from None


def _load_keys(path: Path) -> tuple[dict[str, PublicKeys], dict[str, KeyHistory]]:
    from hotline.log.evidence import parse_keys
    from hotline.log.keychain import keys_file_histories

    data = _read(path, "keys file")
    try:
        obj = json.loads(data.decode("utf-8"))
        return parse_keys(obj, "keys file"), keys_file_histories(obj)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise HotlineError("bad-keys-file", f"{path}: {exc}",
                           hint='expected JSON {"PARTY": {"sign": "<base64url Ed25519 public '
                                'key>"}}, with the keys obtained from the parties '
                                "themselves") from None


def verify_bundle(
        file: Annotated[Path, typer.Argument(help="The bundle ('-' for stdin).")],
        keys_file: Annotated[Path | None, typer.Option(
            "--keys", help='Trusted keys, JSON {"PARTY": {"sign": "<b64url>", "history": '
                           '...?}} (`hotline export keys` writes one); without it the '
                           "bundle's own keys are used and must be compared out of "
                           "band.")] = None,
        as_json: JsonOption = False) -> None:
    """Check an evidence bundle offline, with nothing but the bundle and trusted keys.

    Exits 1 if it does not verify; prints the call's proven timeline if it does."""
    from hotline.log.evidence import load_bundle
    from hotline.log.evidence import verify_bundle as check

    keys, histories = (None, {}) if keys_file is None else _load_keys(keys_file)
    report = check(load_bundle(_read(file, "bundle")), keys, histories)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise HotlineError("bad-bundle", f"the bundle does not verify ({len(report.problems)} "
                                         "problem(s))")


def _iso(ms: object) -> str:
    if not isinstance(ms, int):
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _print_report(report: BundleReport) -> None:
    if not report.ok:
        out.print("[bold red]NOT VERIFIED[/]")
        for problem in report.problems:
            out.print(f"  - {escape(problem)}", highlight=False)
        return
    scope: dict[str, Any] = report.scope or {}
    if "from" in scope:
        about = f"{_iso(scope['from'])} to {_iso(scope['to'])}"
    else:
        about = " ".join(f"{k} {v}" for k, v in scope.items())
    out.print(f"[bold green]VERIFIED[/] evidence from {escape(str(report.origin))} for "
              f"{escape(about)}", highlight=False)
    out.print(f"  {report.entries} entries, each included in the log at its index before "
              f"checkpoint size {report.size} (root {report.root}), cosigned by "
              f"{', '.join(report.witnesses)}", highlight=False)
    source = "from the bundle itself" if report.keys_from_bundle else "from the keys file"
    out.print(f"  keys {source}: " + ", ".join(f"{party} {kid}" for party, kid
                                               in sorted(report.keys.items())),
              highlight=False)
    for note in report.notes:
        out.print(f"  [yellow]note[/]: {escape(note)}", highlight=False)
    if report.timeline:
        reasons = any(t["reason"] for t in report.timeline)
        cols = [Col("#", keep=True), Col("signer's time (UTC)", keep=True),
                Col("state", keep=True), Col("role", keep=True), Col("operator", drop=1),
                Col("signed by", keep=True), *([Col("reason")] if reasons else [])]
        rows = []
        for t in report.timeline:
            when = datetime.fromtimestamp(t["at"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            rows.append([str(t["index"]), when, t["state"], t["role"] or "-",
                         t["operator"] or "-", t["signed_by"],
                         *([t["reason"] or ""] if reasons else [])])
        show(out, cols, rows, title="Proven timeline", title_justify="left")


#: the offline read of the node's database, for other commands' exports
snapshot = snapshot


def register(app: typer.Typer) -> None:
    app.add_typer(log_app, name="log")
    app.add_typer(export_app, name="export")
    app.command("verify-bundle")(verify_bundle)
