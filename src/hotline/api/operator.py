"""The operator API: send, inbox, live events, status. Never open: every route needs
a token (``Authorization: Bearer <token>``): the node's administrator token, which
``hotline init`` creates and ``hotline token`` rotates, or an operator's own token
(``hotline token issue --operator OP``), which acts only as that operator, in the roles
the directory gives them. Every request is logged with who it acted for."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sse_starlette import EventSourceResponse, ServerSentEvent

from hotline.api.auth import Authenticated, still_authenticated
from hotline.api.calls import SSE_ANSWER, CallServices, calls_router
from hotline.api.errors import error_responses
from hotline.api.fields import Cursor, PageLimit
from hotline.api.incidents import IncidentServices, incidents_router
from hotline.api.keys import keys_router
from hotline.api.links import links_router
from hotline.api.notices import notices_router
from hotline.api.queries import queries_router
from hotline.authz.guard import Guard
from hotline.authz.policy import Actor, Admin
from hotline.authz.tokens import TokenBook
from hotline.bounds import LABEL_PATTERN
from hotline.delivery.messenger import Messenger
from hotline.errors import HotlineError
from hotline.forms.service import NoticeService
from hotline.health.alarms import Alarms
from hotline.inbox import PEOPLE_TYPES, Inbox, InboxMessage, iso
from hotline.keys.service import KeyService
from hotline.links.removal import LinkRemoval
from hotline.nodedir.token import TokenChecker
from hotline.status import AlarmStatus, PeerStatus, TaskStatus, alarm_status

api_log = logging.getLogger("hotline.api")
security_log = logging.getLogger("hotline.security")


class SendRequest(BaseModel):
    """One message (``text``) or several (``texts``, enqueued in one transaction, in order)."""

    model_config = ConfigDict(extra="forbid")
    to: Annotated[str, Field(min_length=1, max_length=32, examples=["RU-GS"])]
    text: str | None = None
    texts: list[str] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SendRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        return self


class AcceptedMessage(BaseModel):
    id: str
    to: str
    seq: int
    #: the lane ``seq`` numbers: each lane numbers from 1, so (to, lane, seq) names it
    lane: str = "control"
    created_at: str | None


class SendResponse(BaseModel):
    messages: list[AcceptedMessage]


class InboxEntry(BaseModel):
    cursor: int
    id: str
    sender: str = Field(alias="from")
    seq: int
    #: the lane ``seq`` numbers: each lane numbers from 1, so (from, lane, seq) names it
    lane: str = "control"
    type: str
    text: str | None
    payload: dict[str, Any]
    sent_at: str | None
    received_at: str | None


#: which messages ``GET /api/v1/inbox`` lists
InboxKind = Literal["all", "people"]


class InboxResponse(BaseModel):
    messages: list[InboxEntry]
    next_cursor: int


class StatusResponse(BaseModel):
    party: str
    name: str
    key_id: str
    listen: str
    peers: list[PeerStatus]
    tasks: list[TaskStatus] = []
    alarms: list[AlarmStatus] = []


@dataclass(frozen=True)
class OperatorServices:
    """Exactly what the operator API needs, handed in by the composition root."""

    party: str
    name: str
    key_id: str
    listen: str
    messenger: Messenger
    inbox: Inbox
    status: Callable[[], Awaitable[list[PeerStatus]]]
    tokens: TokenChecker
    calls: CallServices | None = None
    #: supervised tasks and standing alarms
    health: Callable[[], Awaitable[tuple[list[TaskStatus], list[AlarmStatus]]]] | None = None
    alarms: Alarms | None = None
    #: per-operator tokens and the authorization policy (None: administrator token only)
    book: TokenBook | None = None
    guard: Guard | None = None
    #: link removal (None: the routes are not offered)
    removal: LinkRemoval | None = None
    #: this node's key lifecycle (None: no key routes)
    keys: KeyService | None = None
    #: formatted notifications (None: the routes are not offered)
    notices: NoticeService | None = None
    #: incidents (None: no incident routes)
    incidents: IncidentServices | None = None


def operator_router(services: OperatorServices) -> APIRouter:
    async def authenticate(request: Request, authorization: Annotated[
            str | None, Header()] = None) -> Actor:
        """Who is asking: the administrator or an operator (with their current roles);
        anything else is refused 401, with one security-log line."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        actor: Actor | None = None
        if scheme.lower() == "bearer" and token:
            actor = await resolve(token)
        if actor is None:
            security_log.warning("refused unauthenticated request %s %s from %s",
                                 request.method, request.url.path,
                                 request.client.host if request.client else "unknown")
            raise HotlineError("unauthorized", "a valid token is required "
                               "(Authorization: Bearer ...)",
                               hint="the administrator's token is in DIR/operator.token; "
                                    "`hotline token issue` makes an operator's",
                               status=401).already_logged()
        api_log.info("api %s %s for %s", request.method, request.url.path, actor.label)
        request.state.actor = actor
        request.state.reauthenticate = lambda: resolve(token)  # for long-lived streams
        return actor

    async def resolve(token: str) -> Actor | None:
        """The actor a token is now: the administrator (the token file as it is now),
        an operator (a token not revoked, with the roles the directory gives now), or
        None."""
        if services.tokens.check(token):
            return Admin()
        if services.book is not None and services.guard is not None:
            found = await services.book.resolve(token)
            if found is not None:
                return await services.guard.operator(found.operator, f"token:{found.id}")
        return None

    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticate)],
                       tags=["operator"], responses=error_responses(400, 401, 403, 422))

    @router.post("/messages", status_code=201, response_model=SendResponse,
                 responses=error_responses(404, 409, 429))
    async def send_messages(body: SendRequest, idempotency_key: Annotated[
            str | None, Header(description="Repeat a request safely: the same key and body "
                                           "answer what was first accepted, sending nothing "
                                           "again.")] = None) -> SendResponse:
        """Enqueue messages to a linked party; answers once they are durable in the outbox.

        The messages go on the bulk lane (docs/protocol.md, "Lanes"). If the bulk queue
        to the party has no room for all of them (``[delivery] bulk_queue_max_messages``,
        ``bulk_queue_max_bytes``), the answer is 429 ``bulk-queue-full`` with
        ``Retry-After`` and the queue's fill (``queued``, ``queued_bytes``,
        ``max_messages``, ``max_bytes``) and nothing is stored; calls and conversation
        messages are never refused for it."""
        texts = body.texts if body.texts is not None else [body.text or ""]
        accepted = await services.messenger.send_texts(body.to, texts, idempotency_key)
        return SendResponse(messages=[AcceptedMessage(id=a.envelope_id, to=a.peer, seq=a.seq,
                                                      lane=a.lane,
                                                      created_at=iso(a.created_at))
                                      for a in accepted])

    async def visible(actor: Actor, messages: list[InboxMessage]) -> list[InboxMessage]:
        # an operator reads the nodes' traffic about a call or conversation only if it
        # may read that call or conversation (docs/security.md)
        if services.guard is None:
            return messages
        return await services.guard.visible_traffic(actor, messages)

    @router.get("/inbox", response_model=InboxResponse)
    async def inbox(actor: Authenticated, after: Annotated[Cursor, Query()] = 0,
                    limit: Annotated[PageLimit, Query()] = 100,
                    kind: Annotated[InboxKind, Query(
                        description="`people`: only what people sent (`message`, and a "
                                    "repair's `seq.lost`); `all`: also the nodes' own "
                                    "traffic (desk reports, `call.*`, `conv.*`, key "
                                    "notices)")] = "all") -> InboxResponse:
        """Messages released to this node, in release order, after a cursor. An
        operator's token gets the nodes' traffic about a call or conversation (``call.*``,
        ``conv.*``) only for those it may read; ``next_cursor`` still moves past the
        rest."""
        messages = await services.inbox.list(
            after, limit, PEOPLE_TYPES if kind == "people" else None)
        entries = [InboxEntry.model_validate(m.as_dict())
                   for m in await visible(actor, messages)]
        return InboxResponse(messages=entries,
                             next_cursor=messages[-1].cursor if messages else after)

    @router.get("/events", response_class=EventSourceResponse, responses=SSE_ANSWER)
    async def events(request: Request, after: Annotated[Cursor, Query()] = 0,
                     last_event_id: Annotated[Cursor | None, Header()] = None
                     ) -> EventSourceResponse:
        """Server-sent events: ``message`` for each message released, catching up from
        ``after`` (or the ``Last-Event-ID`` header) first (an operator's token: only the
        traffic it may see, as ``GET /inbox``)."""
        start = after if last_event_id is None else last_event_id

        async def stream() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent(comment="connected")
            async for message in services.inbox.follow(start):
                # who the token is now (revoked, roles changed), not at connect
                now = await still_authenticated(request)
                if now is None:
                    return
                if not await visible(now, [message]):
                    continue
                yield ServerSentEvent(data=json.dumps(message.as_dict(), ensure_ascii=False),
                                      event="message", id=str(message.cursor))

        return EventSourceResponse(stream(), ping=15)

    @router.get("/status", response_model=StatusResponse)
    async def status() -> StatusResponse:
        """Per peer: queued, in flight, delivered, last receipt, last error, clock
        offset; the node's supervised tasks and standing alarms."""
        peers = await services.status()
        tasks, alarms = await services.health() if services.health else ([], [])
        key_id = services.keys.current_kid() if services.keys else services.key_id
        return StatusResponse(party=services.party, name=services.name,
                              key_id=key_id, listen=services.listen,
                              peers=peers, tasks=tasks, alarms=alarms)

    if services.alarms is not None:
        router.include_router(alarms_router(services.alarms, services.guard))
    if services.calls is not None:
        router.include_router(calls_router(services.calls))
    if services.removal is not None and services.guard is not None:
        router.include_router(links_router(services.removal, services.guard))
    if services.keys is not None:
        router.include_router(keys_router(services.keys))
    if services.notices is not None and services.calls is not None:
        router.include_router(notices_router(
            services.notices, services.calls.apply, services.calls.guard,
            services.incidents.incidents if services.incidents is not None else None))
    if services.incidents is not None:
        router.include_router(incidents_router(services.incidents))
    if services.calls is not None:
        router.include_router(queries_router(
            services.calls, None if services.incidents is None
            else services.incidents.incidents))
    return router


class ClearAlarmRequest(BaseModel):
    cause: str = Field(min_length=1, max_length=160, pattern=LABEL_PATTERN)
    operator: str | None = Field(default=None, max_length=32, pattern=LABEL_PATTERN,
                                 description="who dealt with it (kept in the log)")


class AlarmsResponse(BaseModel):
    alarms: list[AlarmStatus]


def alarms_router(alarms: Alarms, guard: Guard | None = None) -> APIRouter:
    router = APIRouter()

    @router.get("/alarms", response_model=AlarmsResponse)
    async def standing_alarms() -> AlarmsResponse:
        """The standing alarms, oldest first (each with how often it was raised)."""
        return AlarmsResponse(alarms=alarm_status(await alarms.standing()))

    @router.post("/alarms/clear", status_code=204, responses=error_responses(404))
    async def clear_alarm(body: ClearAlarmRequest, actor: Authenticated) -> Response:
        """Clear a standing alarm once it has been dealt with (an alarm whose cause
        cannot go away by itself, such as a peer's log equivocation). The clearing, and
        who did it, is an entry of the tamper-evident log (an operator's token clears as
        that operator)."""
        by = guard.acting_operator(actor, body.operator, "clear alarm") if guard \
            else body.operator
        if not await alarms.clear(body.cause, by=by):
            raise HotlineError("no-alarm", f"no standing alarm has the cause {body.cause!r}",
                               hint="`hotline alarms` lists them", status=404)
        return Response(status_code=204)

    return router
