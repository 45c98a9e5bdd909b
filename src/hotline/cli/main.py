"""``hotline``: the command line of a node.

Each command is a thin function: validate input, call the node directory, the store or
the running node's operator API, print. Errors are turned into a message with a stable
id and a hint, and an exit code, in one place (:func:`main`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hotline import __version__
from hotline.bounds import INT64_MAX
from hotline.cli.argv import check_arguments, read_stdin
from hotline.cli.calls import register as register_call_commands
from hotline.cli.client import track
from hotline.cli.common import EXIT_ERROR, EXIT_USAGE, DirOption, JsonOption, err, out
from hotline.cli.common import client as _client
from hotline.cli.common import print_json as _print_json
from hotline.cli.helpfmt import tidy
from hotline.cli.incidents import register as register_incident_commands
from hotline.cli.keys import key_app
from hotline.cli.log import export_app
from hotline.cli.log import register as register_log_commands
from hotline.cli.notices import register as register_notice_commands
from hotline.cli.operator import register as register_operator_commands
from hotline.cli.queries import register as register_query_commands
from hotline.cli.repair import register as register_repair_command
from hotline.cli.schedule import schedule_app
from hotline.cli.tables import Col, show
from hotline.cli.tokens import register as register_token_commands
from hotline.errors import HotlineError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Hotline: a federated crisis hotline node.")
link_app = typer.Typer(no_args_is_help=True, help="Exchange and inspect link offers.")
app.add_typer(link_app, name="link")
app.add_typer(key_app, name="key")
app.add_typer(schedule_app, name="schedule")
register_call_commands(app)
register_query_commands(app)
register_log_commands(app)
register_notice_commands(app, export_app)
register_incident_commands(app)
register_operator_commands(app)
register_repair_command(app)
register_token_commands(app)

@app.command()
def init(party: Annotated[str, typer.Option(help="Party id, e.g. US-JS.")],
         node_dir: DirOption,
         listen: Annotated[str, typer.Option(help="HOST:PORT to serve on.")],
         name: Annotated[str | None, typer.Option(help="Display name of the party.")] = None,
         endpoint: Annotated[list[str] | None, typer.Option(
             help="URL peers reach this node at (repeat for alternates; "
                  "default http://LISTEN).")] = None,
         db: Annotated[str | None, typer.Option(
             help="Database URL (default: SQLite at DIR/hotline.db).")] = None,
         as_json: JsonOption = False) -> None:
    """Create a node directory: config, encrypted keystore, operator token, database."""
    from hotline.admin import init_node
    from hotline.cli.passphrase import get_passphrase

    created = init_node(node_dir, party=party, name=name, listen=listen,
                        endpoints=endpoint or [], db=db,
                        passphrase=get_passphrase(confirm=True))
    if as_json:
        _print_json({"party": party, "dir": str(node_dir.resolve()), "key_id": created.key_id,
                     "revocation_cert": str(created.revocation_cert),
                     "safety_number": created.safety_number, "listen": listen})
        return
    out.print(f"[bold]Node {party}[/] created in {escape(str(node_dir.resolve()))}")
    out.print(f"  key id        {created.key_id}")
    out.print(f"  safety number {created.safety_number}")
    out.print(f"  operator token in {escape(str(node_dir.resolve() / 'operator.token'))}")
    out.print(f"  revocation certificate in {escape(str(created.revocation_cert))} (move it "
              "offline)")
    shown = escape(str(node_dir))
    out.print(f"Next: hotline serve --dir {shown}   and   hotline link offer --dir {shown}")


@app.command()
def serve(node_dir: DirOption,
          log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
          accept_broken_log: Annotated[bool, typer.Option(
              "--accept-broken-log", help="Serve even if the log does not verify or the "
                                          "state disagrees with it (the breach stays on "
                                          "record).")] = False,
          log_format: Annotated[str, typer.Option(
              help="text (terse lines) or json (one object per line, with request, "
                   "envelope, call and conversation ids).")] = "text") -> None:
    """Run the node: federation API, operator API and delivery, until Ctrl-C, SIGTERM or
    SIGHUP (a graceful stop, exit 0). One node per directory: a second one is refused
    (error[node-running])."""
    from hotline.cli.passphrase import get_passphrase
    from hotline.logfmt.formats import FORMATS, configure
    from hotline.node import serve as run_node
    from hotline.nodedir.lock import acquire
    from hotline.serving import interrupt_on_stop_signals

    if log_level not in ("debug", "info", "warning", "error"):
        raise HotlineError("bad-option", f"unknown log level {log_level!r}")
    if log_format not in FORMATS:
        raise HotlineError("bad-option", f"unknown log format {log_format!r}",
                           hint="--log-format text or --log-format json")
    interrupt_on_stop_signals()
    # before the keystore and the database: the lock is the process's, released by the
    # kernel however it ends (kill -9 included)
    lock = acquire(node_dir)
    configure(log_format, log_level)
    try:
        run_node(node_dir, get_passphrase(), log_level, accept_broken_log, log_format)
    finally:
        if lock is not None:
            lock.release()


@link_app.command("offer")
def link_offer(node_dir: DirOption,
               out_file: Annotated[Path | None, typer.Option(
                   "--out", help="Write the offer to this file instead of stdout.")] = None
               ) -> None:
    """Print this node's signed link offer; read the safety number to the peer by voice."""
    from hotline.admin import make_link_offer
    from hotline.cli.passphrase import get_passphrase

    offer, number = make_link_offer(node_dir, get_passphrase())
    if out_file is not None:
        try:
            out_file.write_bytes(offer + b"\n")
        except OSError as exc:  # as every other --out: named, not a traceback
            raise HotlineError("unwritable-file",
                               f"cannot write {out_file}: {exc.strerror}") from None
        err.print(f"Offer written to {escape(str(out_file))}")
    else:
        sys.stdout.write(offer.decode() + "\n")
    err.print(f"Safety number: [bold]{number}[/]")


def _key_statements(keys_file: Path) -> dict[str, object]:
    """Each party's signed key statements in a keys file (``hotline export keys``)."""
    try:
        obj = json.loads(keys_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HotlineError("bad-keys-file", f"keys: cannot read {keys_file}: {exc}") from None
    if not isinstance(obj, dict):
        raise HotlineError("bad-keys-file", "keys: the file must be an object of party -> keys")
    out: dict[str, object] = {}
    for party, entry in obj.items():
        history = entry.get("history") if isinstance(entry, dict) else None
        if isinstance(history, dict):
            out[str(party)] = history.get("statements")
    return out


@link_app.command("accept")
def link_accept(offer_file: Annotated[Path, typer.Argument(help="The peer's offer file ('-' "
                                                               "for stdin).")],
                node_dir: DirOption,
                yes: Annotated[bool, typer.Option(
                    "--yes", help="Do not ask: the safety number was already confirmed.")]
                = False,
                keys_file: Annotated[Path | None, typer.Option(
                    "--keys", help="The peer's `hotline export keys` file: for a removed "
                                   "link whose key the peer changed meanwhile, its signed "
                                   "key history.")] = None,
                as_json: JsonOption = False) -> None:
    """Verify a peer's offer, show its safety number, and store the peer."""
    from hotline.admin import accept_link, read_offer

    statements = None if keys_file is None else _key_statements(keys_file)

    try:
        data = sys.stdin.buffer.read() if str(offer_file) == "-" else offer_file.read_bytes()
    except OSError as exc:
        raise HotlineError("bad-offer", f"cannot read {offer_file}: {exc.strerror}") from None
    offer = read_offer(data)
    if not as_json:
        # the name and endpoints are the peer's text: shown as text, never read as markup
        err.print(f"Offer from [bold]{offer.party}[/] ({escape(offer.name)}), endpoints "
                  f"{escape(', '.join(offer.endpoints))}")
        err.print(f"Safety number: [bold]{offer.safety_number}[/]")
    if not yes and not typer.confirm("Does it match the number the peer read to you?"):
        raise HotlineError("not-confirmed", "link not stored: safety number not confirmed")
    new = accept_link(node_dir, offer, None if statements is None
                      else statements.get(offer.party))
    if as_json:
        _print_json({"party": offer.party, "new": new, "safety_number": offer.safety_number})
    else:
        out.print(f"Link with {offer.party} {'stored' if new else 'updated'}. Messages flow once "
                  f"{offer.party} has accepted this node's offer too.")


@link_app.command("list")
def link_list(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """List accepted links."""
    from hotline.admin import list_links
    from hotline.inbox import iso
    from hotline.protocol.keys import safety_number

    links = list_links(node_dir)
    rows: list[dict[str, Any]] = [{"party": link.party, "name": link.name,
             "key_id": link.keys.key_id,
             "endpoints": list(link.endpoints), "accepted_at": iso(link.accepted_at),
             "safety_number": safety_number(link.party, link.keys.sign_bytes,
                                            link.keys.enc_bytes)} for link in links]
    if as_json:
        _print_json({"links": rows})
        return
    show(out, [Col("party", keep=True), Col("name", drop=1), Col("key id", keep=True),
               Col("endpoints"), Col("safety number")],
         [[r["party"], r["name"], r["key_id"], "\n".join(r["endpoints"]), r["safety_number"]]
          for r in rows])


@link_app.command("remove")
def link_remove(party: Annotated[str, typer.Argument(help="The linked party, e.g. RU-GS.")],
                node_dir: DirOption,
                yes: Annotated[bool, typer.Option(
                    "--yes", help="Do not ask: remove after reporting what it ends.")]
                = False,
                wait: Annotated[float, typer.Option(
                    min=0.1, max=120, help="Seconds to wait for the batch on the line to "
                                           "be answered, then for the peer to take the "
                                           "signed link-removed notice.")] = 10.0,
                as_json: JsonOption = False) -> None:
    """Remove a link (the running node does it): report the messages still queued for
    the party, the open calls and the conversations with it, ask, then end each in a
    known state and tell the peer with a signed notice."""
    from hotline.cli.links import remove_link

    remove_link(node_dir, party, yes=yes, wait=wait, as_json=as_json)


@app.command()
def send(party: Annotated[str, typer.Argument(help="Recipient party, e.g. RU-GS.")],
         node_dir: DirOption,
         text: Annotated[str | None, typer.Argument(help="Message text.")] = None,
         stdin: Annotated[bool, typer.Option(
             "--stdin", help="Read messages from stdin, one per line, sent in one "
                             "transaction.")] = False,
         as_json: JsonOption = False) -> None:
    """Send a message (or many with --stdin) to a linked party through the running node."""
    if stdin == (text is not None):
        raise HotlineError("bad-option", "give either TEXT or --stdin", status=EXIT_USAGE)
    texts = [line for line in read_stdin().splitlines() if line.strip()] if stdin \
        else [text or ""]
    if not texts:
        raise HotlineError("empty-message", "stdin held no messages")
    body = _client(node_dir).request("POST", "/api/v1/messages",
                                     json={"to": party, "texts": texts})
    if as_json:
        _print_json(body)
        return
    messages = body["messages"]
    out.print(f"Accepted {len(messages)} message(s) for {party} "
              f"({messages[0].get('lane', 'control')} lane, seq {messages[0]['seq']}.."
              f"{messages[-1]['seq']}); delivery is in progress.")


@app.command()
def inbox(node_dir: DirOption,
          after: Annotated[int, typer.Option(min=0, max=INT64_MAX,
                                             help="Only messages after this cursor.")]
          = 0,
          limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
          show_all: Annotated[bool, typer.Option(
              "--all", help="Also the nodes' own traffic: desk reports, call and "
                            "conversation envelopes, key notices.")] = False,
          as_json: JsonOption = False) -> None:
    """List messages people sent to this node (`hotline send`), in the order they were
    released; --all adds the nodes' own traffic."""
    body = _client(node_dir).request("GET", "/api/v1/inbox", params={
        "after": after, "limit": limit, "kind": "all" if show_all else "people"})
    if as_json:
        _print_json(body)
        return
    # each lane numbers from 1 (docs/protocol.md §11.1): a seq names a message only
    # with its lane
    cols = [Col("#", keep=True), Col("from", keep=True), Col("lane seq", keep=True, drop=2),
            Col("received (UTC)", keep=True), *([Col("type", keep=True)] if show_all else []),
            Col("text")]
    show(out, cols, [[str(m["cursor"]), m["from"], f"{m.get('lane', 'control')} {m['seq']}",
                      _clock(m["received_at"]),
                      *([m["type"]] if show_all else []),
                      m["text"] or json.dumps(m["payload"], ensure_ascii=False)]
                     for m in body["messages"]])


def _clock(iso_time: str | None) -> str:
    """An ISO 8601 UTC time as the tables show it: ``2026-11-30 06:17:42``."""
    return "-" if not iso_time else iso_time[:19].replace("T", " ")


@app.command()
def status(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Per peer: queued, in flight, delivered, last receipt, last error."""
    body = _client(node_dir).request("GET", "/api/v1/status")
    if as_json:
        _print_json(body)
        return
    out.print(f"[bold]{body['party']}[/] ({escape(body['name'])}) listening on "
              f"{escape(body['listen'])}, "
              f"key {body['key_id']}")
    cols = [Col("peer", keep=True), Col("state", keep=True), Col("queued", keep=True),
            Col("in flight", keep=True, drop=3), Col("delivered", keep=True, drop=4),
            Col("undeliverable", keep=True, drop=2), Col("received", keep=True, drop=5),
            Col("last receipt (UTC)", keep=True, drop=6), Col("clock offset", drop=1),
            Col("last error")]
    rows = []
    for p in body["peers"]:
        error = p["last_error"] or ""
        if p["unreachable_for_seconds"] is not None:
            error = (f"unreachable for {p['unreachable_for_seconds']} s "
                     f"({p.get('failed_attempts', 0)} attempts): {error}")
        offset = "-" if p.get("clock_offset_ms") is None else \
            f"{p['clock_offset_ms']:+d} ms ±{p['clock_offset_error_ms']}"
        if p.get("removed_at"):
            error = f"link removed at {p['removed_at']}"
        rows.append([p["party"], p["state"], str(p["queued"]), str(p["in_flight"]),
                     str(p["delivered"]), str(p.get("undeliverable", 0)), str(p["received"]),
                     _clock(p["last_receipt_at"]), offset, error])
    show(out, cols, rows)
    for p in body["peers"]:
        if p.get("state") != "removed":
            out.print(_link_health_line(p), highlight=False)
        lanes = p.get("lanes") or {}
        if any(lane["queued"] for lane in lanes.values()):
            out.print(f"{p['party']} lanes: " + ", ".join(
                f"{name} {lane['queued']} queued"
                + (f" (oldest {lane['oldest_age_s']:g} s)" if lane["oldest_age_s"] is not None
                   else "") for name, lane in lanes.items()), highlight=False)
    for p in body["peers"]:
        if p.get("waiting_for_seq") is not None:
            out.print(f"[bold yellow]gap[/] waiting on seq {p['waiting_for_seq']} from "
                      f"{p['party']}: what follows it is held back", highlight=False)
        for name, lane in (p.get("lanes") or {}).items():
            if name != "control" and lane.get("waiting_for_seq") is not None:
                out.print(f"[bold yellow]gap[/] waiting on {name} seq "
                          f"{lane['waiting_for_seq']} from {p['party']}: what follows it "
                          "on that lane is held back", highlight=False)
        if p.get("peer_waiting_for_seq") is not None:
            out.print(f"[bold yellow]gap[/] {p['party']} waits on our seq "
                      f"{p['peer_waiting_for_seq']}", highlight=False)
    down = [t for t in body.get("tasks", []) if t["state"] != "running"]
    for t in down:
        out.print(f"[bold red]task {escape(t['name'])} is {escape(t['state'])}[/] (restarts: "
                  f"{t['restarts']}; last error: {escape(t['last_error'] or '-')})")
    if body.get("tasks") and not down:
        out.print(f"all {len(body['tasks'])} background tasks running")
    for a in body.get("alarms", []):
        repeats = f" (x{a['count']})" if a["count"] > 1 else ""
        # an alarm's message may quote a peer's answer: text, not markup
        out.print(f"[bold red]ALARM[/] {escape(a['kind'])}{repeats} since {a['first_at']}: "
                  f"{escape(a['message'])}")


HEALTH_STYLE = {"up": "green", "degraded": "yellow", "down": "red", "unknown": "dim"}


def _link_health_line(p: dict[str, Any]) -> str:
    """One peer's link health: state, current endpoint, rtt, last good test, desks."""
    health = p.get("health", "unknown")
    rtt = "-" if p.get("rtt_ms") is None else f"{p['rtt_ms']:.1f} ms"
    samples = [r for _, r in p.get("rtt_last_hour", []) if r is not None]
    hour = "" if not samples else \
        f" (last hour {min(samples):.1f}-{max(samples):.1f} ms, {len(samples)} tests)"
    desks = p.get("desks_staffed")
    staffed = "no desk report yet" if desks is None else \
        f"desks staffed {sum(desks.values())} of {len(desks)}"
    others = [f"{e['endpoint']} {e['health']}" for e in p.get("endpoint_health", [])
              if e["endpoint"] != p.get("current_endpoint")]
    also = f"; other endpoints: {', '.join(others)}" if others else ""
    # the tests answered but batches fail (a proxy passing only the tests, a peer
    # refusing what we send): said on this line too, not only in the state column
    state = p.get("state")
    but = f"; [red]but delivery is {escape(str(state))}[/]: " \
        f"{escape(str(p.get('last_error') or '-'))}" \
        if state in ("failing", "unreachable") and health in ("up", "degraded") else ""
    return (f"link {escape(p['party'])}: [{HEALTH_STYLE.get(health, 'dim')}]"
            f"{escape(health)}[/] via {escape(p.get('current_endpoint') or '-')}, rtt {rtt}"
            f"{hour}, last good test {_clock(p.get('last_good_test_at'))}, {staffed}"
            f"{escape(also)}{but}")


@app.command()
def alarms(node_dir: DirOption,
           clear: Annotated[str | None, typer.Option(
               "--clear", metavar="CAUSE",
               help="Clear the standing alarm with this cause once it has been dealt "
                    "with (logged, with --operator).")] = None,
           operator: Annotated[str | None, typer.Option(
               help="Who cleared it (kept in the log).")] = None,
           as_json: JsonOption = False) -> None:
    """The node's standing alarms, or clear one (--clear CAUSE)."""
    client = _client(node_dir)
    if clear is not None:
        client.request("POST", "/api/v1/alarms/clear",
                       json={"cause": clear, "operator": operator})
        out.print(f"Alarm {clear} cleared.")
        return
    body = client.request("GET", "/api/v1/alarms")
    if as_json:
        _print_json(body)
        return
    if not body["alarms"]:
        out.print("No standing alarms.")
        return
    show(out, [Col("cause", keep=True), Col("since (UTC)", keep=True), Col("times", keep=True),
               Col("message")],
         [[a["cause"], _clock(a["first_at"]), str(a["count"]), a["message"]]
          for a in body["alarms"]])


@app.command()
def demo(base: Annotated[Path | None, typer.Option(
             "--dir", help="Base directory for the four nodes (default: a temporary one).")]
         = None,
         port: Annotated[int, typer.Option(min=1, max=65532,
                                           help="First port; the nodes use four in a row.")]
         = 7100,
         check: Annotated[bool, typer.Option(
             "--exit", "--check",
             help="Replay the scenario, exchange test messages on every link, stop the "
                  "nodes, run `log verify` on each, print the summary table and exit: 0 "
                  "only if every expected outcome was met. Removes the directory if the "
                  "demo made it (never a --dir).")] = False,
         speed: Annotated[float, typer.Option(
             help="Divide every scenario duration by this (60: a two-minute escalation "
                  "step takes two seconds).")] = 60.0) -> None:
    """Start the four-party Przewodów federation (US, RU, UA, PL) on localhost, with the
    scenario's roles, rosters, chains and policies, and replay the scenario, narrated.
    Stops its nodes on Ctrl-C, SIGTERM or SIGHUP; refuses to start (exit 2) if a port is
    taken or a node already runs on --dir."""
    from hotline.cli.demo import run_demo

    raise typer.Exit(run_demo(base, port, check, speed))


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


def main() -> None:
    try:
        check_arguments(sys.argv[1:], os.environ)
        command = typer.main.get_command(app)
        tidy(command)
        track(command)  # so a refusal names a field as this command spells it
        code = command(standalone_mode=False)  # the code of a `typer.Exit` it caught
    except HotlineError as exc:
        err.print(f"[red]error[/]{escape(f'[{exc.error_id}]')}: {escape(exc.message)}",
                  highlight=False)
        if exc.hint:
            err.print(f"hint: {escape(exc.hint)}", highlight=False)
        # a bad option is a usage error wherever it was found (README: "2 for usage")
        usage = exc.status == EXIT_USAGE or exc.error_id == "bad-option"
        sys.exit(EXIT_USAGE if usage else EXIT_ERROR)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # Usage errors (missing option, bad value): click's, or the copy of click that
        # newer Typer releases bundle. Both carry show() and exit_code.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)
