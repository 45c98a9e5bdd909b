"""Operator API for attribution queries (docs/queries.md): ask, list, read, answer.

A query is a call of kind "query", so the authorization policy treats it as the call it
is: asking needs the asking role (like placing a call), answering needs a role that was
rung for it (like answering), and a list shows only the queries the asker may see.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from hotline.api.auth import Authenticated
from hotline.api.calls import OBJECT, CallId, CallServices, OperatorId, RoleId, _Body
from hotline.api.fields import PageLimit
from hotline.calls import queries
from hotline.errors import HotlineError
from hotline.incidents.service import IncidentService
from hotline.protocol.statement import MAX_DETAILS

IncidentId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class QueryRequest(_Body):
    to: Annotated[str, Field(min_length=3, max_length=70, examples=["cgs@RU-GS"])]
    as_role: RoleId = Field(alias="as")
    question: Annotated[str, Field(min_length=1, max_length=queries.MAX_QUESTION)]
    deadline: Annotated[str, Field(min_length=1, max_length=16, examples=["30m"],
                                   description="a duration: 90s, 30m, 2h, 1d")]
    about: IncidentId | None = Field(default=None, description="an incident to link the "
                                     "query to (its timeline shows it)")


class QueryAnswerRequest(_Body):
    as_role: RoleId = Field(alias="as")
    operator: OperatorId | None = None
    answer: Annotated[str, Field(pattern=r"^(yes|no|unknown|will-not-answer)$")]
    details: Annotated[str | None, Field(max_length=MAX_DETAILS)] = None


def queries_router(s: CallServices, incidents: IncidentService | None) -> APIRouter:
    router = APIRouter(tags=["queries"])

    @router.post("/queries", status_code=201, responses=OBJECT)
    async def ask(body: QueryRequest, actor: Authenticated) -> dict[str, Any]:
        """Ask ``role@PARTY`` a question with a response deadline, as one of our roles
        (allowed by the link's ``may_call``, like a call). With ``about``, the query is
        linked to that incident's timeline; an incident we do not hold is refused
        (``no-incident``) before anything is sent."""
        s.guard.require_role(actor, body.as_role, "ask query")
        deadline_ms = queries.parse_deadline(body.deadline)
        question = queries.check_question(body.question)
        if body.about is not None:
            if incidents is None:
                raise HotlineError("no-incident", f"there is no incident {body.about}",
                                   status=404)
            await incidents.get(body.about)  # no-incident if we do not hold it
        call, effects = await s.calls.place(body.to, body.as_role, None,
                                            s.guard.acting_operator(actor, None, "ask"),
                                            query=(question, deadline_ms))
        s.apply(effects)
        if body.about is not None and incidents is not None:
            _entry, linked = await incidents.link(body.about, "query", call.id)
            await s.calls.set_incident(call.id, body.about)
            s.apply(linked)
        return await s.calls.get(call.id)

    @router.get("/queries")
    async def list_queries(actor: Authenticated,
                           limit: Annotated[PageLimit, Query()] = 100) -> dict[str, Any]:
        """``{"queries": [...]}``: queries (both directions), newest first, each a call
        with ``kind`` "query" and ``query``: question, deadline_ms, answer, details,
        status, late, incident."""
        rows = await s.calls.recent(limit, queries_only=True)
        return {"queries": s.guard.visible_calls(actor, rows)}

    @router.get("/queries/{call_id}", responses=OBJECT)
    async def get_query(call_id: CallId, actor: Authenticated) -> dict[str, Any]:
        await s.guard.require(actor, "call", call_id, "read")
        body = await s.calls.get(call_id)
        if body["kind"] != "query":
            raise HotlineError("no-query", f"there is no query {call_id}", status=404)
        return body

    @router.post("/queries/{call_id}/answer", responses=OBJECT)
    async def answer(call_id: CallId, body: QueryAnswerRequest, actor: Authenticated
                     ) -> dict[str, Any]:
        """Answer an incoming query: yes, no, unknown or will-not-answer, with details;
        signed and sent to the asker. After the query's deadline it is refused
        (``query-deadline-passed``): the query is recorded unanswered."""
        operator = await s.guard.require(actor, "call", call_id, "answer",
                                         as_role=body.as_role, operator=body.operator)
        call, effects = await s.calls.answer(call_id, body.as_role, operator,
                                             (body.answer, body.details))
        s.apply(effects)
        return await s.calls.get(call.id)

    return router
