"""A request id for every HTTP request: bound in the logging context while the request
is handled (``hotline.logfmt.context``) and returned as ``X-Request-Id``; a request to
one call or conversation (``/api/v1/calls/ID...``, ``/conversations/ID...`` of the API
and the console) also binds its call or conversation id, so that every line the request
causes (a refusal's security-log line included) names it.

A proxy's own id (an ``X-Request-Id`` header of 1-64 characters from ``A-Z a-z 0-9 . _
-``) is kept, so its access log and the node's lines can be matched; anything else is
replaced by a fresh random id (a client must not write arbitrary text into the log).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hotline.logfmt.context import bound, new_request_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._-]{1,64}")
#: a path naming one call or conversation (ids are 32 hex characters)
_SUBJECT = re.compile(r"^(?:/api/v1)?/(calls|conversations)/([0-9a-f]{32})(?:/|$)")


def subject_ids(path: str) -> dict[str, str | None]:
    """The call or conversation id ``path`` names, as logging context ids."""
    match = _SUBJECT.match(path)
    if match is None:
        return {}
    kind, ident = match.groups()
    return {"call_id" if kind == "calls" else "conversation_id": ident}


def request_id(scope: Scope) -> str:
    """The request's id: the sane ``X-Request-Id`` it carries, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER and _SANE.fullmatch(value):
            return str(value.decode("ascii"))
    return new_request_id()


class RequestIds:
    """ASGI middleware (``app.add_middleware(RequestIds)``)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        rid = request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != HEADER]
                message["headers"] = [*headers, (HEADER, rid.encode("ascii"))]
            await send(message)

        with bound(request_id=rid, **subject_ids(str(scope.get("path", "")))):
            await self._app(scope, receive, send_with_id)
