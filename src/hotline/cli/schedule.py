"""``hotline schedule``: duty schedules — who is on duty, when, and overrides.

Every command opens the node's database itself (like ``roles apply``), so it works whether
or not the node runs, and asks the same function the node's escalation and desk staffing
ask (:mod:`hotline.calls.duty`). Times are ISO 8601; one without an offset is read in the
zone of the role's schedule (UTC for a role without one), the first instant that local
time names (docs/schedules.md). Bad input is refused with the field named, exit 2, and
nothing is changed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.text import Text

from hotline.bounds import MAX_TIME_MS
from hotline.cli.common import EXIT_USAGE, DirOption, JsonOption, out, print_json
from hotline.cli.tables import Col
from hotline.cli.tables import show as show_table
from hotline.errors import HotlineError

schedule_app = typer.Typer(no_args_is_help=True,
                           help="Duty schedules: who is on duty, when; overrides; iCalendar.")

RoleArg = Annotated[str, typer.Argument(help="A role of this node's directory, e.g. ccp-do.")]
FromOption = Annotated[str | None, typer.Option(
    "--from", help="Start, ISO 8601 (default: now).", show_default=False)]
ToOption = Annotated[str | None, typer.Option(
    "--to", help="End, ISO 8601 (default: 14 days after the start).", show_default=False)]

T = TypeVar("T")
DAY_MS = 24 * 3600 * 1000
SHOW_DAYS = 14
EXPORT_DAYS = 28


def _usage(error: HotlineError) -> HotlineError:
    """A refusal of what the user typed: exit 2, the field named in the message."""
    return HotlineError(error.error_id, error.message, hint=error.hint, status=EXIT_USAGE)


def parse_when(text: str, field: str, zone: str) -> int:
    """ISO 8601 → ms since the epoch; without an offset, local time in ``zone``."""
    from hotline.schedules.localtime import to_ms
    from hotline.schedules.localtime import zone as tz

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HotlineError("bad-option", f"{field}: {text[:40]!r} is not an ISO 8601 time",
                           hint="e.g. 2026-03-29T07:30:00+02:00, or 2026-03-29T07:30 in the "
                                "schedule's zone", status=EXIT_USAGE) from None
    ms = to_ms(moment, tz(zone)) if moment.tzinfo is None \
        else int(moment.timestamp() * 1000)
    if not 0 <= ms <= 253_402_300_799_999:
        raise HotlineError("bad-option", f"{field}: {text[:40]!r} is out of range",
                           status=EXIT_USAGE)
    return ms


def _not_after(start: str, end: str, zone: str) -> HotlineError:
    """``--to`` at or before ``--from``; a local time the zone's clocks skip is named, since
    it means the first instant after the skip (two such times can be the same instant)."""
    from hotline.schedules.localtime import to_local
    from hotline.schedules.localtime import zone as tz

    notes = []
    for text in (start, end):
        local = datetime.fromisoformat(text.strip())
        if local.tzinfo is None:
            ms = parse_when(text, "--to", zone)
            if to_local(ms, tz(zone)).replace(fold=0) != local:
                notes.append(f"{text.strip()[:40]} does not exist in {zone} (its clocks "
                             f"skip it) and means {local_iso(ms, zone)}")
    why = f" ({'; '.join(notes)})" if notes else ""
    return HotlineError("bad-option", f"--to: must be after --from{why}", status=EXIT_USAGE)


def local_iso(ms: int, zone: str) -> str:
    """An instant as local time in ``zone`` with its offset (``2026-03-29T08:00:00+02:00``);
    in UTC (``9999-12-31T23:00Z``) when the local time would be past the year 9999."""
    from hotline.schedules.localtime import zone as tz

    moment = datetime.fromtimestamp(ms / 1000, UTC)
    try:
        moment = moment.astimezone(tz(zone))
    except OverflowError:  # the last hours of 9999 in UTC, east of Greenwich
        return moment.isoformat(timespec="minutes" if moment.second == 0 else "seconds"
                                ).replace("+00:00", "Z")
    return moment.isoformat(timespec="minutes" if moment.second == 0 else "seconds")


def _refused_as_usage(ask: Callable[[], T]) -> T:
    """``ask()``; a time too far to compute (``bad-range``) is the user's to fix: exit 2."""
    try:
        return ask()
    except HotlineError as exc:
        if exc.error_id == "bad-range":
            raise _usage(exc) from None
        raise


def _zone(node_dir: Path, role: str) -> str:
    from hotline.calls.duty_offline import role_zone

    try:
        return role_zone(node_dir, role)
    except HotlineError as exc:
        raise _usage(exc) from None


def _range(node_dir: Path, role: str, start: str | None, end: str | None,
           days: int) -> tuple[str, int, int]:
    from hotline.calls.duty_offline import now_ms

    zone = _zone(node_dir, role)
    from_ms = now_ms() if start is None else parse_when(start, "--from", zone)
    until_ms = from_ms + days * DAY_MS if end is None else parse_when(end, "--to", zone)
    if until_ms <= from_ms:
        raise _not_after(start or "", end or "", zone) if start and end else \
            HotlineError("bad-option", "--to: must be after --from", status=EXIT_USAGE)
    if until_ms - from_ms > 367 * DAY_MS:
        raise HotlineError("bad-option", "--to: at most 367 days after --from",
                           status=EXIT_USAGE)
    return zone, from_ms, until_ms


def _shift_dict(shift: Any, zone: str) -> dict[str, Any]:
    return {"from": local_iso(shift.from_ms, zone), "until": local_iso(shift.until_ms, zone),
            "from_ms": shift.from_ms, "until_ms": shift.until_ms,
            "holders": list(shift.holders), "source": shift.source,
            "gap": not shift.holders}


@schedule_app.command("show")
def schedule_show(role: RoleArg, node_dir: DirOption, start: FromOption = None,
                  end: ToOption = None, as_json: JsonOption = False) -> None:
    """The final schedule of ROLE (default: the next 14 days): each shift with its holders
    and where it comes from (a layer, an override, the roster), gaps marked."""
    from hotline.calls.duty_offline import show
    from hotline.schedules.parse import schedule_to_table

    zone, from_ms, until_ms = _range(node_dir, role, start, end, SHOW_DAYS)
    found = _refused_as_usage(lambda: show(node_dir, role, from_ms, until_ms))
    # each layer as the directory file writes it
    layers: list[dict[str, Any]] = [] if found.schedule is None else \
        schedule_to_table(found.schedule)["layers"]
    # an override without an end (the API's default) lasts past any time we can print
    # one whose operator the directory no longer gives the role counts for nothing
    overrides = [{**o.as_dict(), "from": local_iso(o.from_ms, zone),
                  "until": None if o.until_ms > MAX_TIME_MS else local_iso(o.until_ms, zone),
                  "ignored": o.id in found.ignored}
                 for o in found.overrides]
    shifts = [_shift_dict(s, zone) for s in found.shifts]
    if as_json:
        print_json({"role": role, "zone": zone, "from_ms": from_ms, "until_ms": until_ms,
                    "directory_version": found.version, "layers": layers,
                    "overrides": overrides, "shifts": shifts})
        return
    out.print(f"[bold]{escape(role)}[/] in {zone}, {local_iso(from_ms, zone)} to "
              f"{local_iso(until_ms, zone)}", highlight=False)
    for layer in layers:
        out.print(f"  layer {escape(layer['name'])}: {', '.join(layer['participants'])}; "
                  f"turn {layer.get('turn') or layer.get('rrule')}, hand-over "
                  f"{layer['handover']}", highlight=False)
    for o in overrides:
        what = "unavailable" if o["unavailable"] else "on duty"
        until = "no end" if o["until"] is None else f"to {o['until']}"
        ignored = f"; ignored: {escape(role)} is no longer theirs" if o["ignored"] else ""
        out.print(f"  override {o['id']}: {escape(o['operator'])} {what} {o['from']} "
                  f"{until} (by {escape(o['created_by'])}{ignored})", highlight=False)
    show_table(out, [Col("from", keep=True), Col("until", keep=True), Col("on duty"),
                     Col("source", drop=1)],
               [[s["from"], s["until"], ", ".join(s["holders"]) if s["holders"]
                 else Text("NOBODY (gap)", "bold red"), s["source"]] for s in shifts])


@schedule_app.command("who")
def schedule_who(role: RoleArg, node_dir: DirOption,
                 at: Annotated[str | None, typer.Option(
                     "--at", help="The instant, ISO 8601 (default: now), e.g. "
                                  "2026-03-29T07:30:00+02:00.", show_default=False)] = None,
                 as_json: JsonOption = False) -> None:
    """Who is on duty in ROLE now, or at --at: the answer escalation rings."""
    from hotline.calls.duty_offline import now_ms, who

    zone = _zone(node_dir, role)
    at_ms = now_ms() if at is None else parse_when(at, "--at", zone)
    zone, shift = _refused_as_usage(lambda: who(node_dir, role, at_ms))
    body = {"role": role, "at": local_iso(at_ms, zone), "at_ms": at_ms, "zone": zone,
            "holders": list(shift.holders), "source": shift.source}
    if as_json:
        print_json(body)
        return
    holders = ", ".join(shift.holders) if shift.holders else "nobody (a gap)"
    out.print(f"{escape(role)} at {body['at']}: [bold]{escape(holders)}[/] "
              f"({escape(shift.source)})", highlight=False)


@schedule_app.command("override")
def schedule_override(
        role: RoleArg, node_dir: DirOption,
        operator: Annotated[str, typer.Option("--operator", help="The operator (must hold "
                                                                 "ROLE).")],
        start: Annotated[str, typer.Option("--from", help="Start, ISO 8601.")],
        end: Annotated[str, typer.Option("--to", help="End, ISO 8601 (exclusive).")],
        unavailable: Annotated[bool, typer.Option(
            "--unavailable", help="The operator is NOT on duty then (whoever is next in "
                                  "line is, or nobody).")] = False,
        as_json: JsonOption = False) -> None:
    """Put OPERATOR on duty in ROLE from --from to --to (or, --unavailable, off it),
    whatever the layers say. Kept when a directory is applied; logged."""
    from hotline.calls import duty
    from hotline.calls.duty_offline import add_override

    zone = _zone(node_dir, role)
    from_ms = parse_when(start, "--from", zone)
    until_ms = parse_when(end, "--to", zone)
    if until_ms <= from_ms:
        raise _not_after(start, end, zone)
    try:
        row = add_override(node_dir, duty.OverrideRequest(role, operator, from_ms, until_ms,
                                                          unavailable))
    except HotlineError as exc:
        if exc.error_id in ("bad-override", "no-role"):
            message = exc.message.replace("operator:", "--operator:", 1).replace(
                "until_ms:", "--to:", 1).replace("from_ms:", "--from:", 1)
            raise _usage(HotlineError(exc.error_id, message, hint=exc.hint)) from None
        raise
    body = {**row.as_dict(), "from": local_iso(from_ms, zone), "until": local_iso(until_ms,
                                                                                  zone)}
    if as_json:
        print_json(body)
        return
    what = "unavailable" if unavailable else "on duty"
    out.print(f"Override {row.id}: {escape(operator)} {what} in {escape(role)} from "
              f"{body['from']} to {body['until']}.", highlight=False)


@schedule_app.command("export")
def schedule_export(role: RoleArg, node_dir: DirOption,
                    operator: Annotated[str | None, typer.Option(
                        "--operator", help="Only this operator's shifts.")] = None,
                    start: FromOption = None,
                    end: Annotated[str | None, typer.Option(
                        "--to", help="End, ISO 8601 (default: 28 days after the start).",
                        show_default=False)] = None) -> None:
    """Write ROLE's final schedule (or one operator's shifts in it) as iCalendar (.ics)
    to standard output, for the calendar the operators already use."""
    from hotline.calls.duty_offline import holds, show
    from hotline.schedules.ical import export_ical

    zone, from_ms, until_ms = _range(node_dir, role, start, end, EXPORT_DAYS)
    if operator is not None and not holds(node_dir, operator, role):
        raise HotlineError("bad-option", f"--operator: {operator[:40]!r} is not an operator "
                                         f"holding the role {role!r}", status=EXIT_USAGE)
    found = _refused_as_usage(lambda: show(node_dir, role, from_ms, until_ms))
    data = export_ical(found.shifts, zone, calendar_name=f"{role} duty",
                       operator=operator)
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@schedule_app.command("import")
def schedule_import(role: RoleArg,
                    file: Annotated[Path, typer.Argument(help="An iCalendar (.ics) file.")],
                    node_dir: DirOption) -> None:
    """Read rotation layers from an iCalendar file and print them as the TOML to add to
    the directory file (``[[schedules.ROLE.layers]]``); apply it with ``roles apply``.
    Nothing in the node is changed."""
    from hotline.calls.duty_offline import role_holders
    from hotline.schedules.ical import MAX_CALENDAR_BYTES, import_layers
    from hotline.schedules.parse import MAX_LAYERS

    zone = _zone(node_dir, role)
    try:
        with file.open("rb") as stream:  # no more than is needed to refuse a huge file
            data = stream.read(MAX_CALENDAR_BYTES + 1)
    except OSError as exc:
        raise HotlineError("bad-option", f"FILE: cannot read {file}: {exc.strerror}",
                           status=EXIT_USAGE) from None
    if len(data) > MAX_CALENDAR_BYTES:
        raise HotlineError("bad-calendar", f"FILE: {file.name} is larger than "
                                           f"{MAX_CALENDAR_BYTES} bytes", status=EXIT_USAGE)
    try:
        layers = import_layers(data, zone)
    except HotlineError as exc:
        raise _usage(HotlineError(exc.error_id, f"FILE: {file.name}: {exc.message}",
                                  hint=exc.hint)) from None
    if not layers:
        raise HotlineError("bad-calendar", f"FILE: {file.name} holds no recurring "
                                           "events to make layers of", status=EXIT_USAGE)
    # what is printed is meant to be applied: the directory would refuse more layers
    # than it takes (each one-off event is a layer: an export of a month is dozens)
    if len(layers) > MAX_LAYERS:
        raise HotlineError("bad-calendar", f"FILE: {file.name}: {len(layers)} events would "
                           f"make {len(layers)} layers; a schedule takes at most "
                           f"{MAX_LAYERS}", hint="import a shorter range, or describe the "
                           "rotation with recurring events (one layer each)",
                           status=EXIT_USAGE)
    # and it would refuse a stranger
    allowed = role_holders(node_dir, role)
    for n, layer in enumerate(layers, start=1):
        for who in layer.participants:
            if who not in allowed:
                raise HotlineError("bad-calendar", f"FILE: {file.name}: event {n}: "
                                   f"{who[:40]!r} is not an operator holding the role "
                                   f"{role!r}", status=EXIT_USAGE)
    sys.stdout.write(layers_toml(role, layers))


def layers_toml(role: str, layers: list[Any]) -> str:
    """Layers as ``[[schedules.ROLE.layers]]`` tables, the directory's TOML shape."""
    from hotline.schedules.model import Schedule
    from hotline.schedules.parse import schedule_to_table

    def value(item: Any) -> str:
        if isinstance(item, str):
            return json.dumps(item, ensure_ascii=False)  # a TOML basic string
        if isinstance(item, dict):
            return "{ " + ", ".join(f"{k} = {value(v)}" for k, v in item.items()) + " }"
        return "[" + ", ".join(value(v) for v in item) + "]"

    lines: list[str] = []
    for table in schedule_to_table(Schedule(role, "UTC", tuple(layers)))["layers"]:
        lines.append(f"[[schedules.{role}.layers]]")
        lines += [f"{key} = {value(item)}" for key, item in table.items()]
        lines.append("")
    return "\n".join(lines)
