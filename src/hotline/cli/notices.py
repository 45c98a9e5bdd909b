"""``hotline notify``, ``hotline notification …`` and ``hotline export cap|jsonl``.

``notify`` checks the fields against this node's template before it asks the running
node to send (which checks them again): a missing or invalid field is refused naming
it, exit 1, and nothing is sent. The exports read the node's database directly (like
``export evidence``), so they work whether or not the node runs.
"""

from __future__ import annotations

import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hotline.bounds import is_id
from hotline.cli.argv import utf8_text
from hotline.cli.common import DirOption, JsonOption, client, err, out, print_json
from hotline.cli.tables import Col, show
from hotline.errors import HotlineError

notification_app = typer.Typer(no_args_is_help=True,
                               help="Formatted notifications held by this node.")
LangOption = Annotated[str, typer.Option("--lang", help="Language: en, ar, ru, uk or pl.")]


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _plain(value: Any) -> Any:
    """A value read from TOML as the API takes it: numbers of degrees as decimal
    strings, a TOML date-time as ISO 8601 text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return value


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(utf8_text(path.read_bytes(), str(path)))
    except OSError as exc:
        raise HotlineError("unreadable-file", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise HotlineError("bad-file", f"{path} is not TOML: {exc}") from None
    fields = data.get("fields", {})
    if not isinstance(fields, dict):
        raise HotlineError("bad-file", f"{path}: [fields] must be a table")
    for name, value in fields.items():  # place degrees may be written as numbers
        if isinstance(value, dict) and "lat" in value:
            fields[name] = {k: str(v) if isinstance(v, int | float) else v
                            for k, v in value.items()}
    return {**data, "fields": _plain(fields)}


FILE_KEYS = ("template", "to", "incident", "lang", "as", "fields")


def _check_options(body: dict[str, Any], source: str) -> None:
    """What the command (or ``--file``) gives besides the fields, checked here so that a
    refusal names it as the user wrote it (``source``: ``"--"`` for options, ``"FILE: "``
    for a file's keys), not as the request carries it."""
    from hotline.calls.directory import ROLE_RE
    from hotline.forms import model
    from hotline.protocol.envelope import PARTY_RE

    def bad(key: str, problem: str) -> HotlineError:
        return HotlineError("bad-option", f"{source}{key}: {problem}", status=2)

    for key in body:
        if key not in FILE_KEYS:
            raise bad(str(key), f"is not a key of a notification file (keys: "
                                f"{', '.join(FILE_KEYS)})")
    to = body.get("to", [] if body.get("incident") else None)
    least = 0 if body.get("incident") else 1  # an incident names its members itself
    if not isinstance(to, list) or not least <= len(to) <= 16:
        raise bad("to", "give 1 to 16 recipient parties (a list in a file: to = [\"PL-GS\"])")
    incident = body.get("incident")
    if incident is not None and not (isinstance(incident, str) and is_id(incident)):
        raise bad("incident", f"{str(incident)[:64]!r} is not an incident id (32 characters "
                              "0-9 and a-f)")
    for party in to:
        if not isinstance(party, str) or not PARTY_RE.match(party):
            raise bad("to", f"{party!r} is not a party id (e.g. PL-GS)")
    lang = body.get("lang", "en")
    if lang not in model.LANGUAGES:
        raise bad("lang", f"{lang!r} is not one of {', '.join(model.LANGUAGES)}")
    role = body.get("as")
    if role is not None and (not isinstance(role, str) or not ROLE_RE.match(role)):
        raise bad("as", f"{role!r} is not a role id (e.g. nmcc-do)")


def _parse_fields(template_id: str, pairs: list[str]) -> dict[str, Any]:
    from hotline.forms import model

    template = model.latest(template_id)
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, eq, text = pair.partition("=")
        if not eq:
            raise model.FieldError("bad-field", name[:40], "write --field NAME=VALUE")
        f = template.field(name)
        if name in fields:  # the later would silently win over the earlier
            raise model.FieldError("bad-field", name, "is given twice")
        if f is None:
            raise model.FieldError("unknown-field", name[:40],
                                   f"template {template.id} has no such field")
        fields[name] = model.parse_text(f, text)
    return fields


def notify(node_dir: DirOption,
           template: Annotated[str | None, typer.Option(
               "--template", help="Template id, e.g. incident-notification.")] = None,
           to: Annotated[list[str] | None, typer.Option(
               "--to", help="Recipient party (repeat for more).")] = None,
           incident: Annotated[str | None, typer.Option(
               "--incident", help="An incident's id: send to its members (besides any "
                                  "--to) and put it on its timeline.")] = None,
           field: Annotated[list[str] | None, typer.Option(
               "--field", help="NAME=VALUE (repeat); place NAME@LAT,LON[~KM], date-time "
                               "2022-11-15T15:40+01:00[Europe/Warsaw].")] = None,
           file: Annotated[Path | None, typer.Option(
               "--file", help="A TOML file: template, to, lang, [fields].")] = None,
           lang: Annotated[str | None, typer.Option(
               "--lang", help="The language you write free text in (default en).")] = None,
           as_role: Annotated[str | None, typer.Option(
               "--as", help="The role you send in, e.g. nmcc-do.")] = None,
           as_json: JsonOption = False) -> None:
    """Send a formatted notification: fields checked against the template, refused
    naming a missing or invalid one (nothing is sent)."""
    from hotline.forms import model

    body: dict[str, Any] = {}
    if file is not None:
        if field:
            raise HotlineError("bad-option", "give --field or --file, not both", status=2)
        body = _from_file(file)
        if incident is not None and not is_id(incident):
            raise HotlineError("bad-option", f"--incident: {incident[:64]!r} is not an "
                               "incident id (32 characters 0-9 and a-f)", status=2)
        # an --incident given beside the file names the members: the file needs no "to"
        _check_options(body if incident is None else {"incident": incident, **body},
                       f"{file.name}: ")
    if template is not None:
        body["template"] = template
    if to:
        body["to"] = list(to)
    if lang is not None:
        body["lang"] = lang
    if as_role is not None:
        body["as"] = as_role
    if incident is not None:
        body["incident"] = incident
    if not isinstance(body.get("template"), str):
        raise HotlineError("bad-option", "name a --template (or template = … in --file)",
                           status=2)
    if not body.get("to") and not body.get("incident"):
        raise HotlineError("bad-option", "name at least one --to party or an --incident",
                           status=2)
    _check_options(body, "--")
    if file is None:
        body["fields"] = _parse_fields(body["template"], field or [])
    model.validate(model.latest(body["template"]), body.get("fields"))  # before sending
    notice = client(node_dir).request("POST", "/api/v1/notifications", json=body)
    if as_json:
        print_json(notice)
        return
    out.print(f"Notification {notice['id']} ({escape(notice['template'])}) accepted for "
              f"{', '.join(notice['recipients'])}; delivery is in progress.")
    if notice.get("entry"):
        out.print(f"On the timeline of incident {notice['entry']['incident']} as entry "
                  f"{notice['entry']['id']}.")


@notification_app.command("list")
def notification_list(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """The newest notifications sent and received."""
    body = client(node_dir).request("GET", "/api/v1/notifications")
    if as_json:
        print_json(body)
        return
    if not body["notifications"]:
        out.print("No notifications.")
        return
    # the id is what `notification show` and `receipt` need: shown whole (tables.py)
    show(out, [Col("id", keep=True), Col("template"), Col("from", keep=True),
               Col("to", drop=1), Col("sent (UTC)", keep=True, drop=2)],
         [[n["id"], n["template"], n["party"], ", ".join(n["recipients"]),
           _time(n["sent_at"])] for n in body["notifications"]])


@notification_app.command("show")
def notification_show(
        notice_id: Annotated[str, typer.Argument(help="The notification's id.")],
        node_dir: DirOption, lang: LangOption = "en",
        original: Annotated[bool, typer.Option(
            "--original", help="Show it in the sender's language instead.")] = False,
        as_json: JsonOption = False) -> None:
    """One notification rendered in your language (or the sender's, --original), with
    its signed receipts."""
    from hotline.forms import model
    from hotline.forms.render import render

    if lang not in model.LANGUAGES:
        raise HotlineError("bad-option", f"--lang must be one of {model.LANGUAGES}", status=2)
    _check_id(notice_id)
    notice = client(node_dir).request("GET", f"/api/v1/notifications/{notice_id}",
                                      params={"lang": lang})
    if as_json:
        print_json(notice)
        return
    template = model.get(notice["template"], notice["version"])
    shown = render(template, notice["fields"], notice["lang"] if original else lang,
                   original=notice["lang"])
    sys.stdout.write(shown.as_text())
    for r in notice["receipts"]:
        who = r["operator"] or r["party"]
        err.print(f"{r['receipt']} by {escape(who)} ({r['party']}), signed and verified"
                  + (f": {escape(r['reason'])}" if r["reason"] else ""), highlight=False)


@notification_app.command("receipt")
def notification_receipt(
        notice_id: Annotated[str, typer.Argument(help="The notification's id.")],
        receipt: Annotated[str, typer.Argument(help="read or acknowledged.")],
        node_dir: DirOption,
        as_role: Annotated[str, typer.Option("--as", help="The role you act in.")],
        as_json: JsonOption = False) -> None:
    """Sign a read or acknowledged receipt of a notification received here."""
    _check_id(notice_id)
    if receipt not in ("read", "acknowledged"):
        raise HotlineError("bad-option", f"RECEIPT: {receipt!r} is not read or "
                                         "acknowledged", status=2)
    body = client(node_dir).request("POST", f"/api/v1/notifications/{notice_id}/receipts",
                                    json={"receipt": receipt, "as": as_role})
    if as_json:
        print_json(body)
        return
    if not body.get("signed", True):
        by = body.get("by") or {}
        who = by.get("operator") or "the node's administrator"
        out.print(f"{notice_id} was already {receipt} by {escape(str(who))} as "
                  f"{escape(str(by.get('role')))}; nothing more was signed.", highlight=False)
        return
    out.print(f"Signed {receipt} receipt of {notice_id}; it is on its way to the sender.")


def _check_id(notice_id: str, name: str = "NOTICE_ID") -> None:
    from hotline.bounds import is_id

    if not is_id(notice_id):
        raise HotlineError("bad-option", f"{name}: {notice_id[:40]!r} is not a "
                                         "notification id (32 lowercase hex digits)",
                           status=2)


def _notice_offline(node_dir: Path, notice_id: str) -> dict[str, Any]:
    from hotline.cli.log import snapshot
    from hotline.forms.service import read_notice

    with snapshot(node_dir) as (_me, _own, _peers, conn):
        notice = read_notice(conn, notice_id)
    if notice is None:
        raise HotlineError("no-notice", f"there is no notification {notice_id}")
    return notice


def _write(data: bytes, out_file: Path | None) -> None:
    if out_file is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        out_file.write_bytes(data)
    except OSError as exc:
        raise HotlineError("unwritable-file", f"cannot write {out_file}: {exc.strerror}"
                           ) from None


OutOption = Annotated[Path | None, typer.Option("--out", help="Write to this file "
                                                              "instead of stdout.")]


def export_cap(node_dir: DirOption,
               notification: Annotated[str | None, typer.Option(
                   "--notification", help="A notification's id.")] = None,
               incident: Annotated[str | None, typer.Option(
                   "--incident", help="An incident's id: its notifications as one "
                                      "alert.")] = None,
               out_file: OutOption = None) -> None:
    """A notification, or every notification on an incident's timeline, as one OASIS
    CAP 1.2 alert (one <info> per notification and language); give one of
    --notification and --incident."""
    from hotline.exports.cap import cap_alert, notice_alert

    if (notification is None) == (incident is None):
        raise HotlineError("bad-option", "give either --notification ID or --incident ID",
                           status=2)
    if notification is not None:
        _check_id(notification, "--notification")
        _write(notice_alert(_notice_offline(node_dir, notification)), out_file)
        return
    assert incident is not None
    from hotline.cli.log import snapshot
    from hotline.clock import SystemClock
    from hotline.incidents.notices import incident_notices

    with snapshot(node_dir) as (me, _own, _peers, conn):
        found = incident_notices(conn, incident) if is_id(incident) else None
    if found is None:
        raise HotlineError("no-incident", f"there is no incident {incident[:64]}")
    _write(cap_alert(found, identifier=incident, sender=me,
                     sent_ms=SystemClock().now_ms(), note=f"incident {incident}"), out_file)


def export_jsonl(node_dir: DirOption,
                 notification: Annotated[str | None, typer.Option(
                     "--notification", help="A notification's id.")] = None,
                 incident: Annotated[str | None, typer.Option(
                     "--incident", help="An incident's id.")] = None,
                 out_file: OutOption = None) -> None:
    """A notification (with its signed receipts) or an incident (the incident, then one
    line per entry with the author's signed statement) as JSON Lines; give one of
    --notification and --incident."""
    if (notification is None) == (incident is None):
        raise HotlineError("bad-option", "give either --notification ID or --incident ID")
    if incident is not None:
        from hotline.cli.incidents import export_incident_jsonl

        export_incident_jsonl(node_dir, incident, out_file)
        return
    from hotline.exports.jsonl import to_jsonl

    assert notification is not None
    _check_id(notification, "--notification")
    _write(to_jsonl([_notice_offline(node_dir, notification)]).encode(), out_file)


def register(app: typer.Typer, export_app: typer.Typer) -> None:
    app.command("notify")(notify)
    app.add_typer(notification_app, name="notification")
    export_app.command("cap")(export_cap)
    export_app.command("jsonl")(export_jsonl)
