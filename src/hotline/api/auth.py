"""Who is asking, for the routes of the operator API.

The router's own dependency (``authenticate`` in :mod:`hotline.api.operator`) checks the
token once per request and leaves the actor on ``request.state``; a route that needs to
know who asks takes an :data:`Authenticated` parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from hotline.authz.policy import Actor
from hotline.errors import HotlineError


async def current_actor(request: Request) -> Actor:
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:  # a route mounted without the router's authentication
        raise HotlineError("unauthorized", "a valid token is required", status=401)
    return actor


Authenticated = Annotated[Actor, Depends(current_actor)]

security_log = logging.getLogger("hotline.security")


async def still_authenticated(request: Request) -> Actor | None:
    """For a long-lived answer (an event stream), before each event: the actor the
    request's token is *now* — the administrator while the token file still holds that
    token, an operator while the token is not revoked and the directory still names
    them (with the roles it gives now). None, after one security-log line, once the
    token no longer authenticates: the stream then ends."""
    recheck: Callable[[], Awaitable[Actor | None]] | None = getattr(
        request.state, "reauthenticate", None)
    if recheck is None:  # a route mounted without the router's authentication
        return None
    actor = await recheck()
    if actor is None:
        before: Actor | None = getattr(request.state, "actor", None)
        security_log.warning("refused %s: %s %s (the token no longer authenticates; the "
                             "stream ends)", before.label if before else "unknown",
                             request.method, request.url.path)
    return actor
