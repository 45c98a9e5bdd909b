"""Formatted notifications in the console: the list, a form to send one, and one
notification rendered in the operator's language with the sender's original one click
away (``?original=1``).

The form is built from the template file (labels in the operator's language, one input
per field: a place is a name and WGS 84 latitude/longitude, a date-time a local time and
its IANA zone, an enumeration a choice of its translated values). What is sent is
checked by the same function as the CLI's and the API's: a missing or invalid field
re-shows the form with the refusal naming the field (422) and nothing is sent.

Routes: ``GET /notifications``, ``GET /notifications/new?template=T``, ``POST
/notifications/send`` (form: ``csrf``, ``once`` (the form's token: a form sent twice
sends once), ``template``, ``as``, ``lang``, ``to.PARTY`` per
recipient, ``incident`` (an incident this party is a member of: sent to its members too,
and put on its timeline), ``f.NAME`` or ``f.NAME.PART`` per field), ``GET /notifications/{id}``,
``POST /notifications/{id}/receipt`` (form: ``csrf``, ``as``, ``receipt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hotline.console import views
from hotline.console.once import SentForms, new_token
from hotline.errors import HotlineError
from hotline.forms import model
from hotline.forms.render import coordinate, render, value_text, word
from hotline.forms.service import NoticeService
from hotline.incidents.notices import notify_incident
from hotline.incidents.service import IncidentService
from hotline.numerals import ascii_digits

if TYPE_CHECKING:
    from hotline.console.web import Console

MAX_INPUT = 2000
#: refusals of the form's recipients ("To"), shown as that field's
RECIPIENT_ERRORS = frozenset({"bad-recipients", "bad-party", "no-link"})


def _local_instant(name: str, local: str, zone_name: str) -> dict[str, str]:
    """A ``datetime-local`` value read in ``zone_name`` as the field's value."""
    try:
        tz = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
        raise model.FieldError("bad-field", name,
                               f"zone {zone_name!r} is not an IANA time zone") from None
    try:
        naive = datetime.fromisoformat(local)
    except ValueError:
        raise model.FieldError("bad-field", name, "give a date and a time") from None
    if naive.tzinfo is not None:
        raise model.FieldError("bad-field", name, "give the local time without an offset")
    when = naive.replace(tzinfo=tz)
    try:
        # a time in the hour skipped when clocks go forward does not come back the same
        exists = when.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive
    except OverflowError:
        exists = True  # the check of the value names the calendar's end
    if not exists:
        raise model.FieldError("bad-field", name, f"{when:%H:%M} on {when:%Y-%m-%d} "
                                                  f"does not exist in {zone_name} (the "
                                                  "clocks moved forward then)")
    return {"at": when.isoformat(), "zone": zone_name}


def fields_from_form(template: model.Template, form: Mapping[str, str]) -> dict[str, Any]:
    """The raw field values the form gives (empty inputs left out), for
    :func:`~hotline.forms.model.validate` to check."""
    out: dict[str, Any] = {}
    for f in template.fields:
        key = f"f.{f.name}"
        if f.type == "place":
            parts = {p: form.get(f"{key}.{p}", "").strip()
                     for p in ("name", "lat", "lon", "radius_km")}
            # degrees typed on an Arabic keyboard (Arabic-Indic digits) are the same number
            parts.update({p: ascii_digits(parts[p]) for p in ("lat", "lon", "radius_km")})
            if any(parts.values()):
                out[f.name] = {k: v for k, v in parts.items() if v or k != "radius_km"}
        elif f.type == "datetime":
            local = form.get(f"{key}.at", "").strip()
            if local:
                out[f.name] = _local_instant(f.name, local,
                                             form.get(f"{key}.zone", "UTC").strip())
        else:
            value = form.get(key, "").strip() if f.type != "text" else form.get(key, "")
            if value.strip():
                if f.type == "count":
                    value = ascii_digits(value)
                    if not value.isascii() or not value.isdigit() or len(value) > 10:
                        raise model.FieldError("bad-field", f.name,
                                               "must be a whole number 0..1000000000")
                    out[f.name] = int(value)
                else:
                    out[f.name] = value
    return out


class NoticePages:
    def __init__(self, console: Console, service: NoticeService,
                 incidents: IncidentService | None = None) -> None:
        self.c = console
        self.service = service
        self.incidents = incidents
        #: a form sent twice shows the notification it sent (console/once.py)
        self._sent = SentForms()

    async def _member_incidents(self) -> list[dict[str, Any]]:
        if self.incidents is None:
            return []
        return [i for i in await self.incidents.list() if i["state"] == "member"]

    def _enum_words(self, lang: str) -> dict[str, dict[str, str]]:
        return {name: {v: words[lang] for v, words in values.items()}
                for name, values in model.common()["enums"].items()}

    async def index(self, request: Request, viewer: views.Viewer) -> Response:
        items = await self.service.recent()
        titles = {(t.id, t.version): t.title for t in model.templates().values()}
        return self.c.render("notices.html", viewer.lang, viewer, nav="notifications",
                             notices=items, titles=titles)

    async def new(self, request: Request, viewer: views.Viewer, *,
                  form: Mapping[str, str] | None = None, error: HotlineError | None = None,
                  status: int = 200) -> Response:
        chosen = (form or {}).get("template") or request.query_params.get("template")
        template = model.latest(chosen) if chosen else None
        linked = [p.party for p in await self.c.s.status()]
        once = (form or {}).get("once") or new_token()
        return self.c.render(
            "notice_new.html", viewer.lang, viewer, status=status, nav="notifications",
            templates=sorted(model.templates().values(), key=lambda t: t.id),
            template=template, linked=linked, form=form or {}, error=error,
            incidents=await self._member_incidents(),
            error_field=getattr(error, "field", None), enums=self._enum_words(viewer.lang),
            once=once)

    async def send(self, request: Request, viewer: views.Viewer,
                   form: dict[str, str]) -> Response:
        role = self.c.held_role(viewer, form)
        once = form.get("once", "")
        done = self._sent.result(once)
        if done is not None:  # this very form was sent already: show what it sent
            return RedirectResponse(f"{done}?again=1", status_code=303)
        template = model.latest(form.get("template", "")[:48])
        to = sorted(k[3:] for k, v in form.items() if k.startswith("to.") and v)
        lang = form.get("lang", viewer.lang)
        incident = form.get("incident", "").strip()
        try:
            fields = fields_from_form(template, form)
            if incident and self.incidents is not None:
                notice, effects = await notify_incident(
                    self.service, self.incidents, incident[:32], template.id, fields, to,
                    lang=lang, as_role=role, operator=viewer.operator)
            else:
                notice, effects = await self.service.send(template.id, fields, to,
                                                          lang=lang, as_role=role,
                                                          operator=viewer.operator)
        except HotlineError as exc:
            # a refused field, or recipients (none ticked, one no longer linked): the
            # form comes back with what was typed, naming what to change
            if not 400 <= exc.status < 500:
                raise
            from hotline.console.security import log_refusal

            log_refusal(request, exc, viewer.operator)
            status = exc.status  # a role refused stays a 403
            if exc.error_id in RECIPIENT_ERRORS:
                exc, status = model.FieldError(exc.error_id, "to", exc.message), 422
            return await self.new(request, viewer, form=form, error=exc, status=status)
        self.c.s.calls.apply(effects)
        self._sent.remember(once, f"/notifications/{notice['id']}")
        return RedirectResponse(f"/notifications/{notice['id']}", status_code=303)

    async def show(self, request: Request, viewer: views.Viewer) -> Response:
        notice = await self.service.get(request.path_params["notice_id"])
        original = request.query_params.get("original") == "1"
        lang = notice["lang"] if original else viewer.lang
        template = model.get(notice["template"], notice["version"])
        shown = render(template, notice["fields"], lang, original=notice["lang"])
        places = {f.name: notice["fields"][f.name] for f in template.fields
                  if f.type == "place" and f.name in notice["fields"]}
        return self.c.render(
            "notice.html", viewer.lang, viewer, nav="notifications", notice=notice,
            shown=shown, original=original, places=places,
            coord=lambda v, lat: coordinate(v, lang, latitude=lat),
            word=lambda key: word(key, lang),
            radius=lambda v: value_text("count", Decimal(v), lang),
            mine=notice["party"] == self.c.s.party,
            again=request.query_params.get("again") == "1")

    async def receipt(self, request: Request, viewer: views.Viewer,
                      form: dict[str, str]) -> Response:
        role = self.c.held_role(viewer, form)
        kind = form.get("receipt", "")
        notice_id = request.path_params["notice_id"]
        _, effects = await self.service.receipt(notice_id, kind, role, viewer.operator)
        self.c.s.calls.apply(effects)
        return RedirectResponse(f"/notifications/{notice_id}", status_code=303)


def add_notice_routes(router: APIRouter, console: Console, service: NoticeService,
                      incidents: IncidentService | None = None) -> None:
    """The notification pages, behind the console's page and action guards."""
    pages = NoticePages(console, service, incidents)

    async def new(request: Request, viewer: views.Viewer) -> Response:
        return await pages.new(request, viewer)

    router.add_api_route("/notifications", console.page(pages.index), methods=["GET"])
    router.add_api_route("/notifications/new", console.page(new), methods=["GET"])
    router.add_api_route("/notifications/send", console.action(pages.send), methods=["POST"])
    router.add_api_route("/notifications/{notice_id:str}", console.page(pages.show),
                         methods=["GET"])
    router.add_api_route("/notifications/{notice_id:str}/receipt",
                         console.action(pages.receipt), methods=["POST"])
