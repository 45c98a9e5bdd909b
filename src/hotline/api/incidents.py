"""Operator API for incidents (docs/incidents.md).

An incident belongs to the party: any operator of a member party reads its timeline and
adds to it; the node answers about an incident it does not hold exactly as about one
that does not exist (``404 no-incident``), so a party outside an incident learns nothing
of it, not even that it exists. Only the node's administrator or an operator accepts an
invitation; the opener's node alone invites. Every refusal leaves one security-log line
(the error handlers write it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from hotline.api.auth import Authenticated
from hotline.api.errors import error_responses
from hotline.authz.guard import Guard
from hotline.bounds import ID_PATTERN
from hotline.effects import Effects
from hotline.errors import HotlineError
from hotline.incidents.service import IncidentService
from hotline.protocol.incident import MAX_REFS, MAX_TEXT, MAX_TITLE

IncidentId = Annotated[str, Field(pattern=ID_PATTERN)]
PartyId = Annotated[str, Field(pattern=r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$")]
OBJECT = error_responses(400, 404, 409)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenRequest(_Body):
    title: Annotated[str, Field(min_length=1, max_length=MAX_TITLE)]
    parties: Annotated[list[PartyId], Field(max_length=15)] = []


class InviteRequest(_Body):
    party: PartyId


class EntryRequest(_Body):
    kind: Annotated[str, Field(pattern=r"^(fact|claim|assessment|notification)$")]
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    confidence: Annotated[str | None, Field(pattern=r"^(low|moderate|high)$")] = None
    source: PartyId | None = None
    refs: Annotated[list[IncidentId], Field(max_length=MAX_REFS)] = []
    corrects: IncidentId | None = None


class LinkRequest(_Body):
    call: IncidentId | None = None
    conversation: IncidentId | None = None
    query: IncidentId | None = None


@dataclass(frozen=True)
class IncidentServices:
    incidents: IncidentService
    apply: Callable[[Effects], None]
    #: who may see the call or conversation an operator links to an incident
    guard: Guard


def incidents_router(s: IncidentServices) -> APIRouter:
    router = APIRouter(tags=["incidents"])

    @router.get("/incidents")
    async def list_incidents(actor: Authenticated) -> dict[str, Any]:
        """``{"incidents": [...]}``: every incident this party is in or invited to, each
        with ``id``, ``title``, ``opener``, ``state``, ``members``, ``invited``."""
        return {"incidents": await s.incidents.list()}

    @router.post("/incidents", status_code=201, responses=OBJECT)
    async def open_incident(body: OpenRequest, actor: Authenticated) -> dict[str, Any]:
        """Open an incident and invite linked parties (each must accept)."""
        incident, effects = await s.incidents.open(body.title, body.parties)
        s.apply(effects)
        return incident

    @router.get("/incidents/{incident_id}", responses=OBJECT)
    async def show(incident_id: IncidentId, actor: Authenticated,
                   lang: Annotated[str, Query(pattern=r"^(en|ar|ru|uk|pl)$")] = "en"
                   ) -> dict[str, Any]:
        """The incident with its timeline (signed time order, arrival time shown); a
        notification entry carries ``notice``: the notification's title and key fields
        in ``lang``."""
        return await s.incidents.get(incident_id, lang)

    @router.post("/incidents/{incident_id}/invitations", responses=OBJECT)
    async def invite(incident_id: IncidentId, body: InviteRequest, actor: Authenticated
                     ) -> dict[str, Any]:
        """The opener invites one more linked party."""
        incident, effects = await s.incidents.invite(incident_id, body.party)
        s.apply(effects)
        return incident

    @router.post("/incidents/{incident_id}/accept", responses=OBJECT)
    async def accept(incident_id: IncidentId, actor: Authenticated) -> dict[str, Any]:
        """Accept this party's invitation; the opener sends the whole history."""
        incident, effects = await s.incidents.accept(incident_id)
        s.apply(effects)
        return incident

    @router.post("/incidents/{incident_id}/entries", status_code=201, responses=OBJECT)
    async def add(incident_id: IncidentId, body: EntryRequest, actor: Authenticated
                  ) -> dict[str, Any]:
        """Add a fact, claim, assessment or notification (signed by this party)."""
        entry, effects = await s.incidents.add(
            incident_id, kind=body.kind, text=body.text, confidence=body.confidence,
            source=body.source, refs=body.refs, corrects=body.corrects)
        s.apply(effects)
        return entry

    @router.post("/incidents/{incident_id}/links", status_code=201, responses=OBJECT)
    async def link(incident_id: IncidentId, body: LinkRequest, actor: Authenticated
                   ) -> dict[str, Any]:
        """Link one of this node's calls, conversations or queries (exactly one) to the
        incident: one the asker may see (an operator's roles have a part in it), else 404
        ``no-call`` / ``no-conversation`` as for one that does not exist (a query is a
        call)."""
        given = [(k, v) for k, v in (("call", body.call), ("conversation", body.conversation),
                                     ("query", body.query)) if v is not None]
        if len(given) != 1:
            raise HotlineError("bad-link", "give exactly one of call, conversation or query")
        kind, object_id = given[0]
        # the link puts the id on a timeline every member reads: only an object the
        # asker may see (the guard writes the one refusal line)
        await s.guard.require(actor, "conversation" if kind == "conversation" else "call",
                              object_id, "read")
        entry, effects = await s.incidents.link(incident_id, kind, object_id)
        s.apply(effects)
        return entry

    return router
