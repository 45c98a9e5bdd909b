"""``hotline``: the command line of a node.

Each command is a thin function: validate input, call the node directory, the store or
the running node's operator API, print. Errors are turned into a message with a stable
id and a hint, and an exit code, in one place (:func:`main`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hotline import __version__
from hotline.bounds import INT64_MAX
from hotline.cli.calls import register as register_call_commands
from hotline.cli.common import EXIT_ERROR, EXIT_USAGE, DirOption, JsonOption, err, out
from hotline.cli.common import client as _client
from hotline.cli.common import print_json as _print_json
from hotline.cli.log import register as register_log_commands
from hotline.cli.operator import register as register_operator_commands
from hotline.cli.tokens import register as register_token_commands
from hotline.errors import HotlineError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Hotline: a federated crisis hotline node.")
link_app = typer.Typer(no_args_is_help=True, help="Exchange and inspect link offers.")
app.add_typer(link_app, name="link")
register_call_commands(app)
register_log_commands(app)
register_operator_commands(app)
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
                     "safety_number": created.safety_number, "listen": listen})
        return
    out.print(f"[bold]Node {party}[/] created in {node_dir.resolve()}")
    out.print(f"  key id        {created.key_id}")
    out.print(f"  safety number {created.safety_number}")
    out.print(f"  operator token in {node_dir.resolve() / 'operator.token'}")
    out.print(f"Next: hotline serve --dir {node_dir}   and   hotline link offer --dir {node_dir}")


@app.command()
def serve(node_dir: DirOption,
          log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
          accept_broken_log: Annotated[bool, typer.Option(
              "--accept-broken-log", help="Serve even if the log does not verify (the "
                                          "breach stays on record).")] = False) -> None:
    """Run the node: federation API, operator API and delivery, until Ctrl-C."""
    import logging

    from hotline.cli.passphrase import get_passphrase
    from hotline.node import serve as run_node

    if log_level not in ("debug", "info", "warning", "error"):
        raise HotlineError("bad-option", f"unknown log level {log_level!r}")
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_node(node_dir, get_passphrase(), log_level, accept_broken_log)


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
        out_file.write_bytes(offer + b"\n")
        err.print(f"Offer written to {out_file}")
    else:
        sys.stdout.write(offer.decode() + "\n")
    err.print(f"Safety number: [bold]{number}[/]")


@link_app.command("accept")
def link_accept(offer_file: Annotated[Path, typer.Argument(help="The peer's offer file ('-' "
                                                               "for stdin).")],
                node_dir: DirOption,
                yes: Annotated[bool, typer.Option(
                    "--yes", help="Do not ask: the safety number was already confirmed.")]
                = False,
                as_json: JsonOption = False) -> None:
    """Verify a peer's offer, show its safety number, and store the peer."""
    from hotline.admin import accept_link, read_offer

    try:
        data = sys.stdin.buffer.read() if str(offer_file) == "-" else offer_file.read_bytes()
    except OSError as exc:
        raise HotlineError("bad-offer", f"cannot read {offer_file}: {exc.strerror}") from None
    offer = read_offer(data)
    if not as_json:
        err.print(f"Offer from [bold]{offer.party}[/] ({offer.name}), endpoints "
                  f"{', '.join(offer.endpoints)}")
        err.print(f"Safety number: [bold]{offer.safety_number}[/]")
    if not yes and not typer.confirm("Does it match the number the peer read to you?"):
        raise HotlineError("not-confirmed", "link not stored: safety number not confirmed")
    new = accept_link(node_dir, offer)
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
    table = Table("party", "name", "key id", "endpoints", "safety number")
    for r in rows:
        table.add_row(r["party"], r["name"], r["key_id"], "\n".join(r["endpoints"]),
                      r["safety_number"])
    out.print(table)


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
    texts = [line for line in sys.stdin.read().splitlines() if line.strip()] if stdin \
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
              f"(seq {messages[0]['seq']}..{messages[-1]['seq']}); delivery is in progress.")


@app.command()
def inbox(node_dir: DirOption,
          after: Annotated[int, typer.Option(min=0, max=INT64_MAX,
                                             help="Only messages after this cursor.")]
          = 0,
          limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
          as_json: JsonOption = False) -> None:
    """List messages received, in the order they were released."""
    body = _client(node_dir).request("GET", "/api/v1/inbox",
                                     params={"after": after, "limit": limit})
    if as_json:
        _print_json(body)
        return
    table = Table("#", "from", "seq", "received", "text")
    for m in body["messages"]:
        table.add_row(str(m["cursor"]), m["from"], str(m["seq"]), m["received_at"],
                      m["text"] or json.dumps(m["payload"], ensure_ascii=False))
    out.print(table)


@app.command()
def status(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Per peer: queued, in flight, delivered, last receipt, last error."""
    body = _client(node_dir).request("GET", "/api/v1/status")
    if as_json:
        _print_json(body)
        return
    out.print(f"[bold]{body['party']}[/] ({body['name']}) listening on {body['listen']}, "
              f"key {body['key_id']}")
    table = Table("peer", "state", "queued", "in flight", "delivered", "received",
                  "last receipt", "clock offset", "last error")
    for p in body["peers"]:
        error = p["last_error"] or ""
        if p["unreachable_for_seconds"] is not None:
            error = (f"unreachable for {p['unreachable_for_seconds']} s "
                     f"({p.get('failed_attempts', 0)} attempts): {error}")
        offset = "-" if p.get("clock_offset_ms") is None else \
            f"{p['clock_offset_ms']:+d} ms ±{p['clock_offset_error_ms']}"
        table.add_row(p["party"], p["state"], str(p["queued"]), str(p["in_flight"]),
                      str(p["delivered"]), str(p["received"]), p["last_receipt_at"] or "-",
                      offset, error)
    out.print(table)
    down = [t for t in body.get("tasks", []) if t["state"] != "running"]
    for t in down:
        out.print(f"[bold red]task {t['name']} is {t['state']}[/] (restarts: {t['restarts']}; "
                  f"last error: {t['last_error'] or '-'})")
    if body.get("tasks") and not down:
        out.print(f"all {len(body['tasks'])} background tasks running")
    for a in body.get("alarms", []):
        repeats = f" (x{a['count']})" if a["count"] > 1 else ""
        out.print(f"[bold red]ALARM[/] {a['kind']}{repeats} since {a['first_at']}: "
                  f"{a['message']}")


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
    table = Table("cause", "since", "times", "message")
    for a in body["alarms"]:
        table.add_row(a["cause"], a["first_at"] or "-", str(a["count"]), a["message"])
    out.print(table)


@app.command()
def demo(base: Annotated[Path | None, typer.Option(
             "--dir", help="Base directory for the four nodes (default: a temporary one).")]
         = None,
         port: Annotated[int, typer.Option(min=1, max=65532,
                                           help="First port; the nodes use four in a row.")]
         = 7100,
         check: Annotated[bool, typer.Option(
             "--check", help="Replay the scenario, exchange test messages on every link, "
                             "report, and exit.")] = False,
         speed: Annotated[float, typer.Option(
             help="Divide every scenario duration by this (60: a two-minute escalation "
                  "step takes two seconds).")] = 60.0) -> None:
    """Start the four-party Przewodów federation (US, RU, UA, PL) on localhost, with the
    scenario's roles, rosters, chains and policies, and replay the scenario's calls."""
    from hotline.cli.demo import run_demo

    raise typer.Exit(run_demo(base, port, check, speed))


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


def main() -> None:
    try:
        code = app(standalone_mode=False)  # returns the code of a `typer.Exit` it caught
    except HotlineError as exc:
        err.print(f"[red]error[/]{escape(f'[{exc.error_id}]')}: {escape(exc.message)}",
                  highlight=False)
        if exc.hint:
            err.print(f"hint: {escape(exc.hint)}", highlight=False)
        sys.exit(EXIT_USAGE if exc.status == EXIT_USAGE else EXIT_ERROR)
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
