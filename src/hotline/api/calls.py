"""Operator API for calls, desks, the directory and conversations.

Every route sits behind a token (the same dependency as the rest of ``/api/v1``) and
asks the authorization policy (:mod:`hotline.authz`) about the call, conversation or
message it names: an operator's token sees and acts only through the operator's current
roles, and only as that operator; the administrator's may act as any. The acting role
is always given explicitly (``as``), and the node checks it against the directory and
the call; an operator, when named, must hold that role.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from hotline.api.auth import Authenticated, still_authenticated
from hotline.api.errors import error_responses
from hotline.api.fields import Cursor, EpochMs, PageLimit
from hotline.authz.guard import Guard
from hotline.authz.policy import Admin
from hotline.bounds import ID_PATTERN, MAX_TIME_MS
from hotline.calls.conversations import ConversationService
from hotline.calls.desks import DeskService
from hotline.calls.duty import DutyService
from hotline.calls.feed import Feed
from hotline.calls.registry import DirectoryAdmin
from hotline.calls.service import CallService
from hotline.effects import Effects
from hotline.errors import HotlineError

RoleId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9-]{0,31}$")]
OperatorId = Annotated[str, Field(min_length=1, max_length=32,
                                  pattern=r"^[a-z][a-z0-9._-]{0,31}$")]
CallId = Annotated[str, Field(pattern=ID_PATTERN)]
#: what an action on a call, conversation, operator or message may be refused with
OBJECT = error_responses(403, 404, 409)
#: the documented answer of a server-sent event stream (it never ends by itself): the
#: schema is one event's, as OpenAPI reads a ``text/event-stream`` schema
SSE_ANSWER: dict[int | str, dict[str, Any]] = {200: {
    "description": "a stream of server-sent events, from the cursor on",
    "content": {"text/event-stream": {"schema": {
        "type": "object", "description": "one server-sent event", "properties": {
            "event": {"type": "string", "description": "what it is about (message, call, "
                                                       "conversation, alarm, ...)"},
            "data": {"type": "string", "description": "the item, as JSON"},
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "its cursor: "
                   "resume after it with `Last-Event-ID`"},
            "retry": {"type": "integer", "minimum": 0}}}}}}}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CallRequest(_Body):
    to: Annotated[str, Field(min_length=3, max_length=70, examples=["cgs@RU-GS"])]
    as_role: RoleId = Field(alias="as")
    reason: Annotated[str | None, Field(max_length=1000)] = None


class AnswerRequest(_Body):
    as_role: RoleId = Field(alias="as")
    operator: OperatorId | None = None


class DeclineRequest(AnswerRequest):
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class DirectoryRequest(_Body):
    toml: Annotated[str, Field(min_length=1, max_length=1_000_000)]
    force: Annotated[bool, Field(description=(
        "Store it despite link problems (a policy for a party with no link, a linked "
        "party without a policy, a role the peer does not offer); they come back as "
        "warnings."))] = False


class DirectoryConflictBody(BaseModel):
    """The answer to a directory write based on a version that is no longer the newest."""

    error: Annotated[str, Field(examples=["directory-conflict"])]
    message: str
    hint: str | None = None
    current_version: Annotated[int | None, Field(
        description="the newest version when the write was refused")] = None


#: What a schedule without ``until_ms`` shows: 14 days.
SCHEDULE_DAYS_MS = 14 * 24 * 3600 * 1000

#: The largest version a client may name (JSON numbers are exact up to here).
MAX_VERSION = 2**53 - 1


def _version_tag(value: str) -> int:
    """An ``If-Match`` value naming one directory version: ``"7"`` (also ``W/"7"`` or a
    bare ``7``). Anything else (a list, ``*``, a number past :data:`MAX_VERSION`) is
    refused 422 with the header named."""
    tag = value.strip().removeprefix("W/")
    if len(tag) >= 2 and tag[0] == tag[-1] == '"':
        tag = tag[1:-1]
    if not tag.isascii() or not tag.isdigit() or int(tag) > MAX_VERSION:
        raise HotlineError("invalid-request", f'header.if-match: {value[:40]!r} does not '
                           f'name one directory version (e.g. "7", at most {MAX_VERSION})',
                           status=422)
    return int(tag)


class DutyRequest(_Body):
    """An override: ``on-duty`` puts the operator on duty in the role over the window,
    whatever the schedule says; ``unavailable`` (or ``off-duty``, the same) takes them
    off it. ``from_ms`` defaults to now, ``until_ms`` to no end."""

    operator: OperatorId
    role: RoleId
    status: Annotated[str, Field(pattern=r"^(on-duty|off-duty|unavailable)$")] = "on-duty"
    from_ms: EpochMs | None = None
    until_ms: EpochMs | None = None


class ShiftBody(BaseModel):
    """One shift of a final schedule: who holds the role from ``from_ms`` until
    ``until_ms`` (exclusive); ``source`` says where it comes from (a layer's name,
    ``override``, ``roster``, or ``gap``: nobody, ``holders`` empty)."""

    role: str
    holders: list[str]
    from_ms: int
    until_ms: int
    source: str


class ScheduleResponse(BaseModel):
    role: str
    from_ms: int
    until_ms: int
    shifts: list[ShiftBody]


class WhoResponse(BaseModel):
    role: str
    at_ms: int
    holders: list[str]


class PresenceRequest(_Body):
    operator: OperatorId


class SayRequest(_Body):
    text: Annotated[str, Field(min_length=1, max_length=65536)]
    as_role: RoleId = Field(alias="as")
    operator: OperatorId | None = None


class MemberRequest(_Body):
    party: Annotated[str, Field(min_length=1, max_length=32)]


class ReceiptRequest(_Body):
    receipt: Annotated[str, Field(pattern=r"^(read|acknowledged)$")]
    as_role: RoleId = Field(alias="as")
    operator: OperatorId | None = None


@dataclass(frozen=True)
class CallServices:
    calls: CallService
    conversations: ConversationService
    desks: DeskService
    feed: Feed
    apply: Callable[[Effects], None]
    directory: Callable[[], Awaitable[dict[str, Any]]]
    admin: DirectoryAdmin
    guard: Guard
    duty: DutyService


def calls_router(s: CallServices) -> APIRouter:
    router = APIRouter(tags=["calls"])

    @router.post("/calls", status_code=201, responses=OBJECT)
    async def place_call(body: CallRequest, actor: Authenticated) -> dict[str, Any]:
        """Call ``role@PARTY`` as one of our roles. Refused at once (nothing sent) without
        a link or when the link policy forbids it."""
        s.guard.require_role(actor, body.as_role, "place call")
        call, effects = await s.calls.place(body.to, body.as_role, body.reason,
                                            s.guard.acting_operator(actor, None, "place"))
        s.apply(effects)
        return await s.calls.get(call.id)

    @router.get("/calls")
    async def list_calls(actor: Authenticated, active: bool = False,
                         limit: Annotated[PageLimit, Query()] = 100
                         ) -> dict[str, Any]:
        """Calls, newest first, each with its verified history (those the asker may see)."""
        return {"calls": s.guard.visible_calls(actor, await s.calls.recent(limit, active))}

    @router.get("/calls/{call_id}", responses=OBJECT)
    async def get_call(call_id: CallId, actor: Authenticated) -> dict[str, Any]:
        await s.guard.require(actor, "call", call_id, "read")
        return await s.calls.get(call_id)

    @router.post("/calls/{call_id}/answer", responses=OBJECT)
    async def answer_call(call_id: CallId, body: AnswerRequest, actor: Authenticated
                          ) -> dict[str, Any]:
        operator = await s.guard.require(actor, "call", call_id, "answer",
                                         as_role=body.as_role, operator=body.operator)
        call, effects = await s.calls.answer(call_id, body.as_role, operator)
        s.apply(effects)
        return await s.calls.get(call.id)

    @router.post("/calls/{call_id}/decline", responses=OBJECT)
    async def decline_call(call_id: CallId, body: DeclineRequest, actor: Authenticated
                           ) -> dict[str, Any]:
        operator = await s.guard.require(actor, "call", call_id, "decline",
                                         as_role=body.as_role, operator=body.operator)
        call, effects = await s.calls.decline(call_id, body.as_role, body.reason, operator)
        s.apply(effects)
        return await s.calls.get(call.id)

    @router.post("/calls/{call_id}/cancel", responses=OBJECT)
    async def cancel_call(call_id: CallId, actor: Authenticated) -> dict[str, Any]:
        operator = await s.guard.require(actor, "call", call_id, "cancel")
        call, effects = await s.calls.cancel(call_id, operator)
        s.apply(effects)
        return await s.calls.get(call.id)

    @router.get("/desks")
    async def desks() -> dict[str, Any]:
        """The peers' desks we may call, and whether each is staffed (as the peer said)."""
        return {"desks": await s.desks.desks()}

    @router.get("/directory")
    async def directory(response: Response) -> dict[str, Any]:
        """This node's current directory: roles, operators, roster, chains, policies. The
        ``ETag`` header names its version (``"7"``), for ``If-Match`` on a later PUT."""
        current = await s.directory()
        response.headers["ETag"] = f'"{current["version"]}"'
        return current

    @router.put("/directory", responses={409: {
        "model": DirectoryConflictBody,
        "description": "`If-Match` named a version that is no longer the newest; nothing "
                       "was stored. `current_version` is the newest: redo the change on "
                       "it and send it again."}})
    async def put_directory(
            body: DirectoryRequest, response: Response, actor: Authenticated,
            if_match: Annotated[str | None, Header(
                max_length=40, description='The version the file was edited from, as '
                'the ETag of GET /directory gives it ("7"; "0": no directory yet). '
                "Without it, the newest version is replaced whatever it is.")] = None
    ) -> dict[str, Any]:
        """Replace the directory with a TOML file's content (checked as strictly as
        ``hotline roles apply``; the same content again changes nothing). Concurrent
        writers are serialised, each gets its own version. The administrator's token
        only. Link policies are checked against the node's links and its peers' desks;
        what is wrong refuses it (400 ``bad-directory``) unless ``force``, and what is
        merely worth knowing comes back in ``warnings``."""
        s.guard.require_admin(actor, "replace directory")
        base = None if if_match is None else _version_tag(if_match)
        version, changed, warnings = await s.admin.apply_text(body.toml, base=base,
                                                              force=body.force)
        response.headers["ETag"] = f'"{version}"'
        return {"version": version, "changed": changed, "warnings": warnings}

    @router.post("/roster", responses=OBJECT)
    async def set_duty(body: DutyRequest, actor: Authenticated) -> dict[str, Any]:
        """Add an override to the role's schedule (overrides win over every layer; the
        operators that overlapping ones put on duty hold the role together): put an
        operator on duty in a role, or take them off it, now or for a window. Overrides
        are kept apart from directory versions, so a later ``roles apply`` keeps them.
        The administrator may add one for any operator; an operator's token only for
        itself, in a role it holds (403 otherwise). Answers the override and the
        directory version it was checked against (unchanged)."""
        operator = s.guard.acting_operator(actor, body.operator, "take shift") \
            or body.operator
        s.guard.require_role(actor, body.role, "take shift")
        row = await s.duty.take_shift(body.role, operator, body.from_ms, body.until_ms,
                                      unavailable=body.status != "on-duty",
                                      by="admin" if isinstance(actor, Admin) else operator)
        return {"override": row.as_dict(), "version": await s.admin.version(),
                "changed": True}

    @router.get("/schedules/{role}", response_model=ScheduleResponse,
                responses=error_responses(404))
    async def schedule(role: RoleId, from_ms: Annotated[EpochMs | None, Query()] = None,
                       until_ms: Annotated[EpochMs | None, Query()] = None
                       ) -> ScheduleResponse:
        """The final schedule of one of our roles: every shift from ``from_ms`` (default
        now) until ``until_ms`` (default 14 days later), gaps included, the same answer
        escalation and desk staffing use."""
        start = s.duty.now_ms() if from_ms is None else from_ms
        end = min(start + SCHEDULE_DAYS_MS, MAX_TIME_MS) if until_ms is None else until_ms
        shifts = await s.duty.final_schedule_for(role, start, end)
        return ScheduleResponse(role=role, from_ms=start, until_ms=end, shifts=[
            ShiftBody(role=x.role, holders=list(x.holders), from_ms=x.from_ms,
                      until_ms=x.until_ms, source=x.source) for x in shifts])

    @router.get("/schedules/{role}/who", response_model=WhoResponse,
                responses=error_responses(404))
    async def who(role: RoleId, at_ms: Annotated[EpochMs | None, Query()] = None
                  ) -> WhoResponse:
        """Who holds one of our roles at ``at_ms`` (default now); empty: nobody."""
        at = s.duty.now_ms() if at_ms is None else at_ms
        return WhoResponse(role=role, at_ms=at, holders=list(await s.duty.who(role, at)))

    @router.post("/presence", status_code=204, responses=OBJECT)
    async def presence(body: PresenceRequest, actor: Authenticated) -> None:
        """An operator is at the desk (counts towards "staffed"); an operator's token
        reports only its own operator."""
        await s.desks.seen(s.guard.acting_operator(actor, body.operator, "presence")
                           or body.operator)

    @router.get("/conversations")
    async def conversations(actor: Authenticated) -> dict[str, Any]:
        return {"conversations": await s.guard.visible_conversations(
            actor, await s.conversations.recent())}

    @router.get("/conversations/{conv_id}", responses=OBJECT)
    async def conversation(conv_id: CallId, actor: Authenticated) -> dict[str, Any]:
        await s.guard.require(actor, "conversation", conv_id, "read")
        return await s.conversations.get(conv_id)

    @router.post("/conversations/{conv_id}/messages", status_code=201, responses=OBJECT)
    async def say(conv_id: CallId, body: SayRequest, actor: Authenticated) -> dict[str, Any]:
        operator = await s.guard.require(actor, "conversation", conv_id, "say",
                                         as_role=body.as_role, operator=body.operator)
        message, effects = await s.conversations.say(conv_id, body.text, body.as_role,
                                                     operator)
        s.apply(effects)
        return message

    @router.post("/conversations/{conv_id}/members", responses=OBJECT)
    async def add_member(conv_id: CallId, body: MemberRequest, actor: Authenticated
                         ) -> dict[str, Any]:
        await s.guard.require(actor, "conversation", conv_id, "add-member")
        conv, effects = await s.conversations.add_member(conv_id, body.party)
        s.apply(effects)
        return conv

    @router.post("/messages/{message_id}/receipts", status_code=201, responses=OBJECT)
    async def receipt(message_id: CallId, body: ReceiptRequest, actor: Authenticated
                      ) -> dict[str, Any]:
        operator = await s.guard.require(actor, "message", message_id, "receipt",
                                         as_role=body.as_role, operator=body.operator)
        result, effects = await s.conversations.receipt(message_id, body.receipt,
                                                        body.as_role, operator)
        s.apply(effects)
        return result

    @router.get("/calls-events", response_class=EventSourceResponse,
                responses=SSE_ANSWER)
    async def call_events(request: Request, actor: Authenticated,
                          after: Annotated[Cursor, Query()] = 0,
                          last_event_id: Annotated[Cursor | None, Header()] = None
                          ) -> EventSourceResponse:
        """Server-sent events of calls and conversations (``call``, ``conversation``):
        every state, ring and message, catching up from ``after`` / ``Last-Event-ID``
        (an operator's token: those of the calls and conversations it may see)."""
        start = after if last_event_id is None else last_event_id

        async def stream() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent(comment="connected")
            async for entry in s.feed.follow(start):
                # who the token is now (revoked, rotated, roles changed), not at connect
                now = await still_authenticated(request)
                if now is None:
                    return
                if (not isinstance(now, Admin) and entry.kind in ("call", "conversation")
                        and not await s.guard.may_read(now, entry.kind, entry.subject)):
                    continue
                yield ServerSentEvent(data=json.dumps(entry.as_dict(), ensure_ascii=False),
                                      event=entry.kind, id=str(entry.id))

        return EventSourceResponse(stream(), ping=15)

    return router
