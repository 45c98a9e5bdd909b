"""``hotline`` commands for calls, desks, the directory and conversations.

All but ``roles apply`` talk to the running node's operator API; ``roles apply`` writes
the directory to the database itself (like ``link accept``) and the node picks it up.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hotline.cli.common import DirOption, JsonOption, client, out, print_json

roles_app = typer.Typer(no_args_is_help=True,
                        help="Roles, operators, rosters, chains and link policies.")
conversation_app = typer.Typer(no_args_is_help=True, help="Conversations opened by calls.")

AsOption = Annotated[str, typer.Option("--as", help="The role you act in, e.g. nmcc-do.")]
OperatorOption = Annotated[str | None, typer.Option(
    "--operator", help="Who you are (an operator holding the role).")]
CallArg = Annotated[str, typer.Argument(help="Call id (as printed by `hotline call`).")]

STATE_STYLE = {"answered": "bold green", "declined": "bold red", "unanswered": "bold red",
               "undeliverable": "bold red", "refused": "bold red", "expired": "red",
               "cancelled": "yellow", "ringing": "bold yellow", "delivered": "cyan",
               "placed": "white", "fallback": "magenta"}


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


@roles_app.command("apply")
def roles_apply(file: Annotated[Path, typer.Argument(help="The directory file (TOML).")],
                node_dir: DirOption, as_json: JsonOption = False,
                base_version: Annotated[int | None, typer.Option(
                    "--base-version", min=0, max=2**53 - 1, metavar="N",
                    help="The directory version FILE was edited from (0: none yet); if "
                         "the node's directory has moved on since, nothing is applied and "
                         "the command fails with directory-conflict.")] = None) -> None:
    """Validate FILE and make it this node's directory (idempotent: the same file again
    changes nothing). A running node picks it up within a second. Concurrent applies
    are serialised: each gets its own version."""
    from hotline.admin import apply_directory

    version, changed, directory = apply_directory(node_dir, file, base=base_version)
    links = sorted(directory.links)
    summary: dict[str, Any] = {
        "version": version, "changed": changed, "roles": len(directory.roles),
        "operators": len(directory.operators), "chains": len(directory.chains), "links": links}
    if as_json:
        print_json(summary)
        return
    verb = "applied as version" if changed else "unchanged; still version"
    out.print(f"Directory {verb} {version}: {summary['roles']} roles, "
              f"{summary['operators']} operators, {summary['chains']} chains, "
              f"policies for {', '.join(links) or 'no links'}.")


@roles_app.command("show")
def roles_show(node_dir: DirOption) -> None:
    """Print the running node's directory as JSON (webhook secrets withheld)."""
    print_json(client(node_dir).request("GET", "/api/v1/directory"))


def call(to: Annotated[str, typer.Argument(help="ROLE@PARTY to call, e.g. cgs@RU-GS.")],
         node_dir: DirOption, as_role: AsOption,
         reason: Annotated[str | None, typer.Option(help="Why you call (shown to the "
                                                         "callee).")] = None,
         as_json: JsonOption = False) -> None:
    """Call a role of a linked party. Prints the call id (the same on both nodes)."""
    api = client(node_dir)
    desk = next((d for d in api.request("GET", "/api/v1/desks")["desks"]
                 if d["address"] == to), None)
    body = api.request("POST", "/api/v1/calls",
                       json={"to": to, "as": as_role, "reason": reason})
    if as_json:
        print_json({**body, "desk": desk})
        return
    sys_out = typer.echo
    sys_out(body["id"])
    staffed = "unknown" if desk is None else ("staffed" if desk["staffed"] else "NOT staffed")
    out.print(f"Calling {escape(to)} as {escape(as_role)}; duty desk {staffed}. "
              f"Follow it with `hotline calls --dir {node_dir}`.", highlight=False)


def answer(call_id: CallArg, node_dir: DirOption, as_role: AsOption,
           operator: OperatorOption = None, as_json: JsonOption = False) -> None:
    """Answer an incoming call in one of your roles; opens a conversation."""
    body = client(node_dir).request("POST", f"/api/v1/calls/{call_id}/answer",
                                    json={"as": as_role, "operator": operator})
    _done(body, as_json, f"Answered as {as_role}; conversation {call_id} is open.")


def decline(call_id: CallArg, node_dir: DirOption, as_role: AsOption,
            reason: Annotated[str, typer.Option(help="Why (the caller reads it).")],
            operator: OperatorOption = None, as_json: JsonOption = False) -> None:
    """Decline an incoming call, with a reason the caller sees, signed."""
    body = client(node_dir).request("POST", f"/api/v1/calls/{call_id}/decline",
                                    json={"as": as_role, "reason": reason,
                                          "operator": operator})
    _done(body, as_json, f"Declined as {as_role}.")


def cancel(call_id: CallArg, node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Cancel an outgoing call that is still ringing or undelivered."""
    body = client(node_dir).request("POST", f"/api/v1/calls/{call_id}/cancel")
    _done(body, as_json, "Cancelled.")


def _done(body: dict[str, Any], as_json: bool, message: str) -> None:
    if as_json:
        print_json(body)
    else:
        out.print(message)


def calls(node_dir: DirOption, as_json: JsonOption = False,
          active: Annotated[bool, typer.Option(help="Only calls still in progress.")] = False,
          follow: Annotated[bool, typer.Option(
              "--follow", "-f", help="Keep the view live until Ctrl-C.")] = False,
          limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """Calls, newest first, each with its history, every step marked verified or not."""
    api = client(node_dir)

    def fetch() -> list[dict[str, Any]]:
        params = {"limit": limit, "active": str(active).lower()}
        result: list[dict[str, Any]] = api.request("GET", "/api/v1/calls",
                                                   params=params)["calls"]
        return result

    if as_json:
        print_json({"calls": fetch()})
        return
    if not follow:
        out.print(_calls_view(fetch()))
        return
    with Live(_calls_view(fetch()), console=out, refresh_per_second=4) as live:
        while True:
            time.sleep(0.5)
            live.update(_calls_view(fetch()))


def _calls_view(items: list[dict[str, Any]]) -> Group | Text:
    if not items:
        return Text("No calls.")
    parts: list[Any] = []
    for c in items:
        arrow = "→" if c["direction"] == "out" else "←"
        style = STATE_STYLE.get(c["state"], "")
        title = Text.assemble((f"{c['id']}  ", "dim"), f"{c['caller']} {arrow} {c['callee']}  ",
                              (c["state"].upper(), style))
        table = Table("time", "state", "step", "role", "operator", "signed by", "verified",
                      "reason", title=title, title_justify="left", expand=False)
        for h in c["history"]:
            table.add_row(_time(h["at"]), Text(h["state"], STATE_STYLE.get(h["state"], "")),
                          "-" if h.get("step") is None else str(h["step"] + 1),
                          h.get("role") or "-", h.get("operator") or "-", h["signed_by"],
                          Text("✔ yes", "green") if h["verified"] else Text("✘ NO", "bold red"),
                          h.get("reason") or "")
        parts.append(table)
    return Group(*parts)


def desks(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """The peers' desks this node may call, and whether each is staffed now."""
    rows = client(node_dir).request("GET", "/api/v1/desks")["desks"]
    if as_json:
        print_json({"desks": rows})
        return
    table = Table("desk", "title", "staffed", "callable by", "reported")
    for d in rows:
        table.add_row(d["address"], d["titles"].get("en", ""),
                      Text("staffed", "green") if d["staffed"] else Text("NOT staffed", "red"),
                      ", ".join(d["callers"]), _time(d["updated_at"]))
    out.print(table)


def presence(operator: Annotated[str, typer.Argument(help="Operator id.")],
             node_dir: DirOption) -> None:
    """Tell the node an operator is at the desk (counts towards "staffed")."""
    client(node_dir).request("POST", "/api/v1/presence", json={"operator": operator})
    out.print(f"{operator} marked present.")


@conversation_app.command("list")
def conversation_list(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Conversations, newest first."""
    rows = client(node_dir).request("GET", "/api/v1/conversations")["conversations"]
    if as_json:
        print_json({"conversations": rows})
        return
    table = Table("id", "topic", "members", "opened")
    for r in rows:
        table.add_row(r["id"], r["topic"], ", ".join(r["members"]), _time(r["created_at"]))
    out.print(table)


@conversation_app.command("show")
def conversation_show(conversation: Annotated[str, typer.Argument(help="Conversation id.")],
                      node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Messages of a conversation with their receipts."""
    conv = client(node_dir).request("GET", f"/api/v1/conversations/{conversation}")
    if as_json:
        print_json(conv)
        return
    out.print(f"[bold]{escape(conv['topic'])}[/]  ({', '.join(conv['members'])})")
    for m in conv["messages"]:
        receipts = ", ".join(f"{r['receipt']} by {r['party']}" for r in m["receipts"])
        out.print(Text.assemble((f"{_time(m['sent_at'])} {m['role']}@{m['party']}: ", "bold"),
                                m["text"], (f"  [{receipts}]" if receipts else "", "dim"),
                                (f"  id {m['id']}", "dim")))


@conversation_app.command("say")
def conversation_say(conversation: Annotated[str, typer.Argument(help="Conversation id.")],
                     text: Annotated[str, typer.Argument(help="Message text.")],
                     node_dir: DirOption, as_role: AsOption, operator: OperatorOption = None,
                     as_json: JsonOption = False) -> None:
    """Send a message to every member of a conversation."""
    body = client(node_dir).request("POST", f"/api/v1/conversations/{conversation}/messages",
                                    json={"text": text, "as": as_role, "operator": operator})
    _done(body, as_json, f"Sent (message {body['id']}).")


@conversation_app.command("add")
def conversation_add(conversation: Annotated[str, typer.Argument(help="Conversation id.")],
                     party: Annotated[str, typer.Argument(help="Party to add, e.g. PL-GS.")],
                     node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Add a linked party to a conversation (a conference)."""
    body = client(node_dir).request("POST", f"/api/v1/conversations/{conversation}/members",
                                    json={"party": party})
    _done(body, as_json, f"Members: {', '.join(body['members'])}.")


@conversation_app.command("receipt")
def conversation_receipt(message: Annotated[str, typer.Argument(help="Message id.")],
                         kind: Annotated[str, typer.Argument(help="read or acknowledged.")],
                         node_dir: DirOption, as_role: AsOption,
                         operator: OperatorOption = None) -> None:
    """Give a signed read / acknowledged receipt for a message you received."""
    client(node_dir).request("POST", f"/api/v1/messages/{message}/receipts",
                             json={"receipt": kind, "as": as_role, "operator": operator})
    out.print(f"Receipt '{kind}' sent.")


def register(app: typer.Typer) -> None:
    app.add_typer(roles_app, name="roles")
    app.add_typer(conversation_app, name="conversation")
    for command in (call, answer, decline, cancel, calls, desks, presence):
        app.command()(command)
