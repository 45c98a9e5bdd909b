"""Duty schedules in the console: who holds each of the operator's roles over the next
14 days, with the gaps marked, and taking a shift.

The pages ask the node's one duty service (:class:`hotline.calls.duty.DutyService`), as
the operator API's ``GET /api/v1/schedules/{role}/who`` does, over the computation
``hotline schedule`` uses too, so the console cannot name another holder than they do;
the page re-fetches its schedule every 15 s (``GET /schedules/{role}/view``), so it does
not go stale. Times are shown and read in the schedule's own zone (a role without a
schedule: UTC), by the one rule of docs/schedules.md ("the first instant at which the
zone's wall clock reads that time or later"), and the page names the zone.

Taking a shift adds an override for the operator themself in a role the directory gives
them now (the rule of docs/security.md for operators): a role not held is refused
(``role-not-held``, 403, one security-log line, nothing stored); a window the directory
refuses is ``bad-override``; a time that cannot be read is ``bad-shift-time`` naming the
field. Routes: ``GET /schedules``, ``GET /schedules/{role}`` (and its ``/view``), ``POST
/schedules/{role}/take`` (form: ``csrf``; ``when`` = ``current`` | ``next`` | ``window``;
with ``window``, ``from`` and ``until`` as local ``YYYY-MM-DDTHH:MM``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hotline.authz.policy import OperatorActor
from hotline.calls.directory import Directory
from hotline.console import views
from hotline.errors import HotlineError
from hotline.schedules.localtime import to_local, to_ms, zone
from hotline.schedules.model import Shift
from hotline.store.schedules import OverrideRow

if TYPE_CHECKING:
    from hotline.console.web import Console

#: How far ahead the pages show the final schedule: 14 days (to the next whole hour).
HORIZON_MS = 14 * 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
#: How far back the page looks for the start of the shift in progress (a longer shift
#: shows as starting then).
LOOKBACK_MS = 24 * 3600 * 1000
#: What ``when`` may say on the take form.
WHEN = ("current", "next", "window")
#: ``datetime-local`` inputs send ``YYYY-MM-DDTHH:MM`` (``:SS`` with a step); nothing longer.
MAX_LOCAL_TIME = 19


@dataclass(frozen=True)
class ShiftRow:
    """One line of the final schedule as the page shows it.

    ``kind`` is ``layer``, ``override``, ``roster`` or ``gap``; ``layer`` the layer's name;
    ``set_by`` who made the override(s); ``holders`` (operator id, name) pairs; ``mine``:
    the viewer holds it; ``now``: it contains the instant the page was made."""

    from_ms: int
    until_ms: int
    holders: tuple[tuple[str, str], ...]
    kind: str
    layer: str | None
    set_by: tuple[str, ...]
    mine: bool
    now: bool

    @property
    def is_gap(self) -> bool:
        return self.kind == "gap"


def shift_rows(shifts: Sequence[Shift], overrides: Sequence[OverrideRow],
               directory: Directory, operator: str, now_ms: int) -> list[ShiftRow]:
    """The final schedule's shifts as lines: names from the directory, and who made the
    overrides a shift comes from (``source`` ``override:<id>[,<id>...]``)."""
    made_by = {str(o.id): o.created_by for o in overrides}
    rows = []
    for shift in shifts:
        kind, _, detail = shift.source.partition(":")
        ids = detail.split(",") if kind == "override" else []
        holders = tuple((who, _name(directory, who)) for who in shift.holders)
        rows.append(ShiftRow(
            from_ms=shift.from_ms, until_ms=shift.until_ms, holders=holders,
            kind=kind if kind in ("layer", "override", "roster", "gap") else "layer",
            layer=detail if kind == "layer" else None,
            set_by=tuple(dict.fromkeys(made_by.get(i, "?") for i in ids)),
            mine=operator in shift.holders,
            now=shift.from_ms <= now_ms < shift.until_ms))
    return rows


def zone_of(directory: Directory, role: str) -> str:
    """The zone of the role's schedule; UTC for a role without one (as ``hotline
    schedule`` shows it)."""
    schedule = directory.schedules.get(role)
    return "UTC" if schedule is None else schedule.zone


def _name(directory: Directory, operator: str) -> str:
    op = directory.operators.get(operator)
    return op.name if op is not None else operator


def watch_window(shifts: Sequence[Shift], now_ms: int, which: str, operator: str
                 ) -> tuple[int, int]:
    """The window ``[from_ms, until_ms)`` of "take the current watch" (from now to the end
    of the shift that holds now) or "take the next watch" (the first later shift the
    operator does not already hold). ``shifts`` is the final schedule from ``now_ms`` on.
    Raises ``no-watch`` (409) when there is none within the shifts given, and
    ``already-on-duty`` (409) when the operator holds the current watch already."""
    current = next((s for s in shifts if s.from_ms <= now_ms < s.until_ms), None)
    if which == "current":
        if current is None:
            raise HotlineError("no-watch", "when: there is no current watch to take",
                               status=409)
        if operator in current.holders:
            raise HotlineError("already-on-duty", f"when: {operator} holds the current "
                                                  "watch already", status=409)
        return now_ms, current.until_ms
    later = [s for s in shifts if s.from_ms > now_ms and operator not in s.holders]
    if not later:
        raise HotlineError("no-watch", "when: there is no later watch in the next 14 days "
                                       "that is not yours already", status=409)
    return later[0].from_ms, later[0].until_ms


def local_instant(value: str, zone_name: str, field: str) -> int:
    """A ``datetime-local`` value (``2026-03-29T08:00``, wall-clock time in ``zone_name``)
    as an instant by the schedules' rule (a time in a skipped hour: the first instant
    after it; in a repeated hour: the first pass). ``bad-shift-time`` (422) naming
    ``field`` when it is not such a value."""
    text = value.strip()
    try:
        if not text or len(text) > MAX_LOCAL_TIME or "T" not in text:
            raise ValueError(text)
        local = datetime.fromisoformat(text)
        if local.tzinfo is not None:
            raise ValueError(text)
        return to_ms(local, zone(zone_name))
    except (ValueError, OverflowError):
        raise HotlineError("bad-shift-time", f"{field}: {text[:40]!r} is not a local date "
                                             f"and time (YYYY-MM-DDTHH:MM) in {zone_name}",
                           status=422) from None


def local_input(ms: int, zone_name: str) -> str:
    """``ms`` as a ``datetime-local`` input value in ``zone_name`` (to the minute)."""
    return to_local(ms, zone(zone_name)).strftime("%Y-%m-%dT%H:%M")


class SchedulePages:
    def __init__(self, console: Console) -> None:
        self.c = console

    def _require_role(self, viewer: views.Viewer, role: str) -> None:
        actor = OperatorActor(operator=viewer.operator, roles=frozenset(viewer.roles),
                              via="console")
        self.c.s.calls.guard.require_role(actor, role, "duty schedule")

    async def _role_view(self, viewer: views.Viewer, role: str) -> dict[str, Any]:
        duty = self.c.s.calls.duty
        now = duty.now_ms()
        # to a whole hour, so that a page polled within the hour shows the same last line
        until = -(-(now + HORIZON_MS) // HOUR_MS) * HOUR_MS
        # from a day back, so that the shift in progress shows when it began
        shifts = [s for s in await duty.final_schedule_for(role, now - LOOKBACK_MS, until)
                  if s.until_ms > now]
        holders = await duty.who(role, now)
        overrides = await duty.overrides(role, now - LOOKBACK_MS, until)
        directory = self.c.s.registry.current
        rows = shift_rows(shifts, overrides, directory, viewer.operator, now)
        zone_name = zone_of(directory, role)
        spec = directory.roles.get(role)
        title = views.title_in(spec.titles, viewer.lang, role) if spec else role
        return {"role": role, "title": title, "zone": zone_name, "rows": rows,
                "gaps": [r for r in rows if r.is_gap],
                "holders": [(who, _name(directory, who)) for who in holders],
                "now_ms": now, "until_ms": until, "version": version(rows, holders)}

    async def index(self, request: Request, viewer: views.Viewer) -> Response:
        roles = [await self._role_view(viewer, role) for role in viewer.roles]
        return self.c.render("schedules.html", viewer.lang, viewer, nav="schedules",
                             roles=roles)

    async def role(self, request: Request, viewer: views.Viewer) -> Response:
        role = request.path_params["role"]
        self._require_role(viewer, role)
        view = await self._role_view(viewer, role)
        current = next((r for r in view["rows"] if r.now), None)
        end = current.until_ms if current is not None else view["now_ms"]
        return self.c.render(
            "schedule.html", viewer.lang, viewer, nav="schedules", **view,
            done=request.query_params.get("done") == "taken",
            holds_current=current is not None and current.mine,
            default_from=local_input(view["now_ms"], view["zone"]),
            default_until=local_input(end, view["zone"]))

    async def view(self, request: Request, viewer: views.Viewer) -> Response:
        """The live part of the role's page (who now, the gaps, the table), which the page
        re-fetches every 15 s: overrides made elsewhere and hand-overs show up."""
        role = request.path_params["role"]
        self._require_role(viewer, role)
        return self.c.render("_schedule_view.html", viewer.lang, viewer,
                             **await self._role_view(viewer, role))

    async def take(self, request: Request, viewer: views.Viewer,
                   form: dict[str, str]) -> Response:
        """Add an override putting the viewer on duty in the role over the chosen window.
        Every check comes before the one write, so a refusal stores nothing."""
        role = request.path_params["role"]
        self._require_role(viewer, role)
        duty = self.c.s.calls.duty
        when = form.get("when", "")
        if when not in WHEN:
            raise HotlineError("bad-form", "when: is 'current', 'next' or 'window'",
                               status=400)
        now = duty.now_ms()
        if when == "window":
            zone_name = zone_of(self.c.s.registry.current, role)
            start = local_instant(_value(form, "from"), zone_name, "from")
            end = local_instant(_value(form, "until"), zone_name, "until")
            if end <= start:
                raise HotlineError("bad-shift-time", "until: must be after from",
                                   status=422)
            if end <= now:
                raise HotlineError("bad-shift-time", "until: is in the past", status=422)
        else:
            shifts = await duty.final_schedule_for(role, now, now + HORIZON_MS)
            start, end = watch_window(shifts, now, when, viewer.operator)
        await duty.take_shift(role, viewer.operator, start, end, by=viewer.operator)
        return RedirectResponse(f"/schedules/{role}?done=taken", status_code=303)


def version(rows: Sequence[ShiftRow], holders: Sequence[str]) -> str:
    """Changes when what the live part of the page shows changes, and only then."""
    lines = ";".join(f"{r.from_ms}-{r.until_ms}:{','.join(h for h, _ in r.holders)}:"
                     f"{r.kind}:{r.layer}:{','.join(r.set_by)}:{int(r.now)}" for r in rows)
    return f"{','.join(holders)}|{lines}"


def _value(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value.strip():
        raise HotlineError("bad-shift-time", f"{name}: is required", status=422)
    return value


def add_schedule_routes(router: APIRouter, console: Console) -> None:
    """The schedule pages, behind the console's own page and action guards (session,
    same origin, CSRF token, path values checked)."""
    pages = SchedulePages(console)
    router.add_api_route("/schedules", console.page(pages.index), methods=["GET"])
    router.add_api_route("/schedules/{role:str}", console.page(pages.role), methods=["GET"])
    router.add_api_route("/schedules/{role:str}/view", console.page(pages.view),
                         methods=["GET"])
    router.add_api_route("/schedules/{role:str}/take", console.action(pages.take),
                         methods=["POST"])
