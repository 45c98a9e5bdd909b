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
from rich.text import Text

from hotline.cli.common import DirOption, JsonOption, client, err, out, print_json
from hotline.cli.tables import Col, fit, show

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
                         "the command fails with directory-conflict.")] = None,
                force: Annotated[bool, typer.Option(
                    "--force", help="Apply it despite link problems (a policy for a "
                                    "party with no link, a linked party without one, a "
                                    "role the peer does not offer); they are shown as "
                                    "warnings.")] = False) -> None:
    """Validate FILE and make it this node's directory (idempotent: the same file again
    changes nothing). A running node picks it up within a second. Concurrent applies
    are serialised: each gets its own version. Link policies are checked against the
    node's links and the desks its peers offer."""
    from hotline.admin import apply_directory

    version, changed, directory, warnings = apply_directory(
        node_dir, file, base=base_version, force=force)
    links = sorted(directory.links)
    summary: dict[str, Any] = {
        "version": version, "changed": changed, "roles": len(directory.roles),
        "operators": len(directory.operators), "chains": len(directory.chains),
        "schedules": sorted(directory.schedules), "links": links, "warnings": warnings}
    for warning in warnings:
        err.print(f"[yellow]warning[/]: {escape(warning)}", highlight=False)
    if as_json:
        print_json(summary)
        return
    verb = "applied as version" if changed else "unchanged; still version"
    out.print(f"Directory {verb} {version}: {summary['roles']} roles, "
              f"{summary['operators']} operators, {summary['chains']} chains, "
              f"schedules for {', '.join(directory.schedules) or 'no roles'}, "
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
    titles = _titles(api)
    if not follow:
        out.print(_calls_view(fetch(), titles), crop=False)
        return
    with Live(_calls_view(fetch(), titles), console=out, refresh_per_second=4) as live:
        while True:
            time.sleep(0.5)
            live.update(_calls_view(fetch(), titles))


def _titles(api: Any) -> dict[str, str]:
    """``role@party`` -> English title, for our roles (the directory) and the peers' desks
    (their reports)."""
    roles = api.request("GET", "/api/v1/directory")["directory"].get("roles", {})
    me = api.request("GET", "/api/v1/status")["party"]
    titles = {f"{rid}@{me}": _title(role.get("title", {})) for rid, role in roles.items()}
    for desk in api.request("GET", "/api/v1/desks")["desks"]:
        titles.setdefault(desk["address"], _title(desk["titles"]))
    return titles


def _title(titles: dict[str, str]) -> str:
    return titles.get("en") or next(iter(titles.values()), "")


def _who(h: dict[str, Any], titles: dict[str, str]) -> str:
    """Who a step is about: ``Chief of the General Staff (cgs): ccp-1, ccp-2`` for a
    ring (or ``no one on duty``), the role and operator who acted otherwise."""
    role = h.get("role")
    if not role:
        return h.get("operator") or "-"
    # a role list (an alert) or one role, of the party that signed the step
    named = []
    for rid in role.split(","):
        title = titles.get(f"{rid}@{h['signed_by']}")
        named.append(f"{title} ({rid})" if title else rid)
    label = ", ".join(named)
    if h["state"] == "ringing":
        rung = h.get("who") or []
        return f"{label}: {', '.join(rung) if rung else 'no one on duty'}"
    return f"{label}: {h['operator']}" if h.get("operator") else label


CALL_COLUMNS = [Col("time (UTC)", keep=True), Col("state", keep=True),
                Col("step", keep=True, drop=1), Col("who"),
                Col("signed by", keep=True, drop=2), Col("verified", keep=True),
                Col("reason")]


def _calls_view(items: list[dict[str, Any]], titles: dict[str, str]) -> Group | Text:
    if not items:
        return Text("No calls.")
    parts: list[Any] = []
    for c in items:
        # caller first, whichever side we are: "nmcc-do@US-JS → cgs@RU-GS" on both nodes
        way = "outgoing" if c["direction"] == "out" else "incoming"
        style = STATE_STYLE.get(c["state"], "")
        title = Text.assemble((f"{c['id']}  ", "dim"), f"{way}: {c['caller']} → {c['callee']}  ",
                              (c["state"].upper(), style))
        if c.get("reason"):
            title.append(f"\nreason: {c['reason']}")
        if c.get("query"):
            title.append(query_line(c["query"]))
        rows = [[_time(h["at"]), Text(h["state"], STATE_STYLE.get(h["state"], "")),
                 "-" if h.get("step") is None else str(h["step"] + 1), _who(h, titles),
                 h["signed_by"],
                 Text("✔ yes", "green") if h["verified"] else Text("✘ NO", "bold red"),
                 h.get("reason") or ""] for h in c["history"]]
        parts.append(fit(out, CALL_COLUMNS, rows, title=title, title_justify="left"))
    return Group(*parts)


def query_line(q: dict[str, Any]) -> str:
    """A query's question, status and answer, for a call's title."""
    line = f"\nQUERY: {q['question']}\nstatus: {q['status'].upper()}"
    if q.get("answer"):
        mark = "verified" if q.get("answer_verified") else "NOT VERIFIED"
        line += f" — answer {q['answer']} ({mark})"
        if q.get("details"):
            line += f"\ndetails: {q['details']}"
    return line


def desks(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """The peers' desks this node may call, and whether each is staffed now."""
    rows = client(node_dir).request("GET", "/api/v1/desks")["desks"]
    if as_json:
        print_json({"desks": rows})
        return
    show(out, [Col("desk", keep=True), Col("title"), Col("staffed", keep=True),
               Col("callable by", drop=2), Col("reported (UTC)", keep=True, drop=1)],
         [[d["address"], _title(d["titles"]),
           Text("staffed", "green") if d["staffed"] else Text("NOT staffed", "red"),
           ", ".join(d["callers"]), _time(d["updated_at"])] for d in rows])


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
    show(out, [Col("id", keep=True), Col("topic"), Col("members", drop=1),
               Col("opened (UTC)", keep=True, drop=2)],
         [[r["id"], r["topic"], ", ".join(r["members"]), _time(r["created_at"])]
          for r in rows])


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
    gone = body.get("undeliverable") or []
    _done(body, as_json, f"Sent (message {body['id']})." + (
        f" Not to {', '.join(gone)}: the link was removed (undeliverable)." if gone else ""))


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
