"""Incidents in the console: the list, one incident's timeline, and the form that adds
an entry (docs/incidents.md).

The pages ask the node's incident service, as the operator API does; an incident this
party is not in answers exactly as one that does not exist (``no-incident``, 404, one
security-log line), so the console of a party outside an incident shows nothing of it.
An invitation shows its title and opener, and a button to accept it. Routes: ``GET
/incidents``, ``GET /incidents/{id}``, ``POST /incidents/{id}/accept``, ``POST
/incidents/{id}/entries`` (form: ``csrf``, ``kind``, ``text``, ``confidence``, ``source``,
``corrects``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hotline.bounds import is_id
from hotline.console import views
from hotline.console.once import SentForms, new_token
from hotline.errors import HotlineError
from hotline.incidents.service import IncidentService, no_incident
from hotline.protocol.incident import CONFIDENCE, MAX_TEXT, OPERATOR_TYPES

if TYPE_CHECKING:
    from hotline.console.web import Console


def _form_value(form: Mapping[str, str], name: str, max_len: int) -> str | None:
    value = form.get(name, "").strip()
    if len(value) > max_len:
        raise HotlineError("bad-form", f"{name} is too long", status=400)
    return value or None


class IncidentPages:
    def __init__(self, console: Console, incidents: IncidentService) -> None:
        self.c = console
        self.incidents = incidents
        #: an entry form sent twice adds one entry (console/once.py)
        self._sent = SentForms()

    async def index(self, request: Request, viewer: views.Viewer) -> Response:
        return self.c.render("incidents.html", viewer.lang, viewer, nav="incidents",
                             incidents=await self.incidents.list())

    def _id(self, request: Request) -> str:
        incident_id = request.path_params["incident_id"]
        if not is_id(incident_id):
            raise no_incident(incident_id)
        return str(incident_id)

    async def show(self, request: Request, viewer: views.Viewer) -> Response:
        incident = await self.incidents.get(self._id(request), viewer.lang)
        return self.c.render("incident.html", viewer.lang, viewer, nav="incidents",
                             incident=incident, kinds=OPERATOR_TYPES,
                             confidences=CONFIDENCE, max_text=MAX_TEXT, once=new_token(),
                             again=request.query_params.get("again") == "1")

    async def accept(self, request: Request, viewer: views.Viewer,
                     form: dict[str, str]) -> Response:
        incident_id = self._id(request)
        _, effects = await self.incidents.accept(incident_id)
        self.c.s.calls.apply(effects)
        return RedirectResponse(f"/incidents/{incident_id}", status_code=303)

    async def add(self, request: Request, viewer: views.Viewer,
                  form: dict[str, str]) -> Response:
        incident_id = self._id(request)
        once = form.get("once", "")
        done = self._sent.result(once)
        if done is not None:  # this very form was sent already: the entry is there
            return RedirectResponse(f"{done}?again=1", status_code=303)
        corrects = _form_value(form, "corrects", 32)
        _, effects = await self.incidents.add(
            incident_id, kind=form.get("kind", ""), text=form.get("text", ""),
            confidence=_form_value(form, "confidence", 16),
            source=_form_value(form, "source", 32), corrects=corrects)
        self.c.s.calls.apply(effects)
        self._sent.remember(once, f"/incidents/{incident_id}")
        return RedirectResponse(f"/incidents/{incident_id}", status_code=303)


def add_incident_routes(router: APIRouter, console: Console,
                        incidents: IncidentService) -> None:
    """The incident pages, behind the console's own page and action guards (session,
    same origin, CSRF token, path values checked)."""
    pages = IncidentPages(console, incidents)
    router.add_api_route("/incidents", console.page(pages.index), methods=["GET"])
    router.add_api_route("/incidents/{incident_id:str}", console.page(pages.show),
                         methods=["GET"])
    router.add_api_route("/incidents/{incident_id:str}/accept", console.action(pages.accept),
                         methods=["POST"])
    router.add_api_route("/incidents/{incident_id:str}/entries", console.action(pages.add),
                         methods=["POST"])
