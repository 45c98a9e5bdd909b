"""``hotline incident ...`` and ``hotline export jsonl``: incidents through the running
node's operator API (docs/incidents.md)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text

from hotline.cli.common import DirOption, JsonOption, client, err, out, print_json
from hotline.cli.tables import Col, show
from hotline.errors import HotlineError

incident_app = typer.Typer(no_args_is_help=True,
                           help="Incidents: one shared, sourced timeline among parties.")

IncidentArg = Annotated[str, typer.Argument(help="Incident id (as `incident open` printed).")]


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _done(body: dict[str, Any], as_json: bool, message: str) -> None:
    if as_json:
        print_json(body)
    else:
        out.print(message, highlight=False)


@incident_app.command("open")
def incident_open(node_dir: DirOption,
                  title: Annotated[str, typer.Option("--title", help="What happened.")],
                  party: Annotated[list[str] | None, typer.Option(
                      "--party", help="A linked party to invite (repeat).")] = None,
                  as_json: JsonOption = False) -> None:
    """Open an incident and invite linked parties; each party's operator accepts."""
    body = client(node_dir).request("POST", "/api/v1/incidents",
                                    json={"title": title, "parties": party or []})
    _done(body, as_json, f"Incident {body['id']} opened; invited: "
                         f"{', '.join(body['invited']) or 'nobody'}.")


@incident_app.command("list")
def incident_list(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """The incidents this party is in or invited to."""
    rows = client(node_dir).request("GET", "/api/v1/incidents")["incidents"]
    if as_json:
        print_json({"incidents": rows})
        return
    if not rows:
        out.print("No incidents.")
        return
    # the id is what `incident show` and `incident add` need: shown whole (tables.py)
    show(out, [Col("id", keep=True), Col("title"), Col("state", keep=True),
               Col("members", drop=2), Col("invited", drop=1),
               Col("opened (UTC)", keep=True, drop=3)],
         [[r["id"], r["title"], r["state"], ", ".join(r["members"]),
           ", ".join(r["invited"]), _time(r.get("created_at"))] for r in rows])


@incident_app.command("show")
def incident_show(incident: IncidentArg, node_dir: DirOption, as_json: JsonOption = False,
                  lang: Annotated[str, typer.Option(
                      "--lang", help="Show notifications in: en, ar, ru, uk or pl.")] = "en"
                  ) -> None:
    """The incident's timeline, ordered by each entry's signed time (arrival shown); a
    notification entry shows the notification's title and key fields in --lang."""
    body = client(node_dir).request("GET", f"/api/v1/incidents/{incident}",
                                    params={"lang": lang})
    if as_json:
        print_json(body)
        return
    out.print(f"[bold]{escape(body['title'])}[/]  opened by {body['opener']}  "
              f"({body['state']}; members {', '.join(body['members'])})", highlight=False)
    for e in body["entries"]:
        _print_entry(e)


def _print_entry(e: dict[str, Any]) -> None:
    """One timeline entry as a block that an 80-column terminal cannot break where it
    matters: a heading of whole times (``Text`` lines that never split inside one), the
    text wrapped under it, one note a line, then the entry's id on a line of its own (the id
    ``--corrects`` and ``--ref`` take)."""
    what = e["text"] or e["title"] or (f"{e['party']} joined" if e["type"] == "joined"
                                       else f"{e['link_kind']} {e['link']}")
    notes = [f"confidence {e['confidence']}" if e["confidence"] else "",
             f"source {e['source']}" if e["source"] else "",
             f"corrects {e['corrects']}" if e["corrects"] else "",
             f"CORRECTED by {', '.join(e['corrected_by'])}" if e["corrected_by"] else "",
             f"relayed by {e['via']}" if e["via"] else ""]
    notice = e.get("notice")
    if notice:  # a notification this node holds, rendered in the asked language
        what = notice["title"]
        notes.append(f"notification {notice['id']}")
    heading = Text.assemble((_time(e["at"]), "bold"), "  ", (e["author"], "bold"), "  ",
                            (e["type"], "bold"))
    if e["received_at"] is not None and e["received_at"] != e["at"]:
        heading.append(f"  (arrived {_time(e['received_at'])})", "dim")
    out.print(heading, no_wrap=True, crop=False)
    out.print(Padding(Text(what), (0, 0, 0, 2), expand=False))
    for f in notice["fields"] if notice else []:
        out.print(Padding(Text.assemble(f"{f['label']}: ", f["text"]), (0, 0, 0, 4),
                          expand=False))
    for note in notes:  # one a line: an id in a note is never split from its words
        if note:
            out.print(Text("  " + note, "dim"), no_wrap=True, crop=False)
    out.print(Text.assemble("  id ", (e["id"], "dim")), no_wrap=True, crop=False)


@incident_app.command("add")
def incident_add(incident: IncidentArg, node_dir: DirOption,
                 kind: Annotated[str, typer.Option(
                     "--kind", help="fact, claim, assessment or notification.")],
                 text: Annotated[str, typer.Option("--text", help="What it says.")],
                 confidence: Annotated[str | None, typer.Option(
                     "--confidence", help="low, moderate or high.")] = None,
                 source: Annotated[str | None, typer.Option(
                     "--source", help="The party it comes from (default: this party).")]
                 = None,
                 ref: Annotated[list[str] | None, typer.Option(
                     "--ref", help="An entry it refers to (repeat).")] = None,
                 corrects: Annotated[str | None, typer.Option(
                     "--corrects", help="The entry it corrects (that entry stays).")] = None,
                 as_json: JsonOption = False) -> None:
    """Add a signed entry to the incident's timeline; every member receives it."""
    body = client(node_dir).request("POST", f"/api/v1/incidents/{incident}/entries", json={
        "kind": kind, "text": text, "confidence": confidence, "source": source,
        "refs": ref or [], "corrects": corrects})
    _done(body, as_json, f"Entry {body['id']} added.")


@incident_app.command("invite")
def incident_invite(incident: IncidentArg,
                    party: Annotated[str, typer.Argument(help="Party to invite.")],
                    node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Invite one more linked party (the opener's node only)."""
    body = client(node_dir).request("POST", f"/api/v1/incidents/{incident}/invitations",
                                    json={"party": party})
    _done(body, as_json, f"Invited {party}.")


@incident_app.command("accept")
def incident_accept(incident: IncidentArg, node_dir: DirOption, as_json: JsonOption = False
                    ) -> None:
    """Accept this party's invitation; the whole history follows from the opener."""
    body = client(node_dir).request("POST", f"/api/v1/incidents/{incident}/accept")
    _done(body, as_json, f"Accepted; {body['opener']} sends the history.")


@incident_app.command("link")
def incident_link(incident: IncidentArg, node_dir: DirOption,
                  call: Annotated[str | None, typer.Option("--call", help="A call id.")]
                  = None,
                  conversation: Annotated[str | None, typer.Option(
                      "--conversation", help="A conversation id.")] = None,
                  query: Annotated[str | None, typer.Option(
                      "--query", help="A query id.")] = None,
                  as_json: JsonOption = False) -> None:
    """Put a call, a conversation or a query of this node on the incident's timeline."""
    body = client(node_dir).request("POST", f"/api/v1/incidents/{incident}/links",
                                    json={"call": call, "conversation": conversation,
                                          "query": query})
    _done(body, as_json, f"Linked ({body['id']}).")


def export_incident_jsonl(node_dir: Path, incident: str, out_file: Path | None) -> None:
    """An incident as JSON Lines (``hotline export jsonl --incident``): the incident,
    then one line per entry with the author's signed statement."""
    from hotline.incidents.export import to_jsonl

    text = to_jsonl(client(node_dir).request("GET", f"/api/v1/incidents/{incident}"))
    if out_file is None:
        sys.stdout.write(text)
        return
    try:
        out_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HotlineError("unwritable-file",
                           f"cannot write {out_file}: {exc.strerror}") from None
    err.print(f"Incident {incident}: written to {escape(str(out_file))}.", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(incident_app, name="incident")
