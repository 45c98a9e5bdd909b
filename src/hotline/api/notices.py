"""Operator API for formatted notifications (``/api/v1/notifications``).

Every operator of this node may read the notices it holds (they are the party's, like
its inbox); sending and receipts act in a role the acting operator holds (the
administrator's token names any). A refused field answers 422 naming it
(``{"error": "missing-field" | "unknown-field" | "bad-field", "field": …}``); nothing
is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from hotline.api.auth import Authenticated
from hotline.api.calls import OBJECT, CallId, OperatorId, RoleId
from hotline.authz.guard import Guard
from hotline.effects import Effects
from hotline.errors import HotlineError
from hotline.forms import model
from hotline.forms.render import render
from hotline.forms.service import NoticeService
from hotline.incidents.notices import notify_incident
from hotline.incidents.service import IncidentService

Lang = Annotated[str, Field(pattern=r"^(en|ar|ru|uk|pl)$")]
PartyId = Annotated[str, Field(pattern=r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$")]


class NoticeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    template: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,47}$")]
    to: Annotated[list[PartyId], Field(max_length=16)] = []
    incident: Annotated[str | None, Field(pattern=r"^[0-9a-f]{32}$")] = None
    fields: dict[str, Any]
    lang: Lang = "en"
    as_role: RoleId | None = Field(default=None, alias="as")
    operator: OperatorId | None = None


class NoticeReceiptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    receipt: Annotated[str, Field(pattern=r"^(read|acknowledged)$")]
    as_role: RoleId = Field(alias="as")
    operator: OperatorId | None = None


def shown(notice: dict[str, Any], lang: str) -> dict[str, Any]:
    """``notice`` with ``rendered`` (in ``lang``) and ``original`` (in the sender's)."""
    template = model.get(notice["template"], notice["version"])
    return {**notice,
            "rendered": render(template, notice["fields"], lang,
                               original=notice["lang"]).as_dict(),
            "original": render(template, notice["fields"], notice["lang"],
                               original=notice["lang"]).as_dict()}


def notices_router(service: NoticeService, apply: Callable[[Effects], None],
                   guard: Guard, incidents: IncidentService | None = None) -> APIRouter:
    """``incidents``: the incident service, for a notification sent with ``incident``
    (to the incident's members, and on its timeline)."""
    router = APIRouter(tags=["notifications"])

    @router.get("/notification-templates")
    async def list_templates() -> dict[str, Any]:
        """Every template this node holds: id, version, title, fields (name, type,
        required, enumeration values)."""
        common = model.common()["enums"]
        return {"templates": [
            {"id": t.id, "version": t.version, "title": t.title,
             "fields": [{"name": f.name, "type": f.type, "required": f.required,
                         "label": f.label,
                         "values": list(common[f.enum]) if f.enum else None}
                        for f in t.fields]}
            for t in sorted(model.templates().values(), key=lambda t: (t.id, t.version))]}

    @router.post("/notifications", status_code=201, responses=OBJECT)
    async def send(body: NoticeRequest, actor: Authenticated) -> dict[str, Any]:
        """Send a formatted notification to linked parties (``to``) and, with
        ``incident``, to the incident's members, adding it to the incident's timeline
        (the answer then has ``entry``; shape: see docs/notifications.md)."""
        operator = guard.acting_operator(actor, body.operator, "send notification")
        if body.as_role is not None:
            guard.require_role(actor, body.as_role, "send notification")
        if body.incident is not None and incidents is not None:
            notice, effects = await notify_incident(
                service, incidents, body.incident, body.template, body.fields, body.to,
                lang=body.lang, as_role=body.as_role, operator=operator)
            apply(effects)
            return notice
        if not body.to:
            raise HotlineError("bad-recipients", "name at least one party in to (or an "
                                                 "incident)")
        notice, effects = await service.send(body.template, body.fields, body.to,
                                             lang=body.lang, as_role=body.as_role,
                                             operator=operator)
        apply(effects)
        return notice

    @router.get("/notifications")
    async def recent(actor: Authenticated) -> dict[str, Any]:
        """The newest notifications sent and received, newest first."""
        return {"notifications": await service.recent()}

    @router.get("/notifications/{notice_id}", responses=OBJECT)
    async def one(notice_id: CallId, actor: Authenticated,
                  lang: Annotated[Lang, Query()] = "en") -> dict[str, Any]:
        """One notification with its signed receipts, rendered in ``lang`` and in the
        sender's language."""
        return shown(await service.get(notice_id), lang)

    @router.get("/notifications/{notice_id}/cap", responses=OBJECT,
                response_class=Response)
    async def cap(notice_id: CallId, actor: Authenticated) -> Response:
        """The notification as an OASIS CAP 1.2 alert."""
        # lxml is loaded on the first export, not by every idle node (about 4 MB)
        from hotline.exports.cap import notice_alert

        return Response(notice_alert(await service.get(notice_id)),
                        media_type="application/xml")

    @router.post("/notifications/{notice_id}/receipts", status_code=201, responses=OBJECT)
    async def receipt(notice_id: CallId, body: NoticeReceiptRequest, actor: Authenticated
                      ) -> dict[str, Any]:
        """A signed *read* or *acknowledged* receipt of a notification received here."""
        operator = guard.acting_operator(actor, body.operator, "notification receipt")
        guard.require_role(actor, body.as_role, "notification receipt")
        result, effects = await service.receipt(notice_id, body.receipt, body.as_role,
                                                operator)
        apply(effects)
        return result

    return router
