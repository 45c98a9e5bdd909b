"""Who is asking, for the routes of the operator API.

The router's own dependency (``authenticate`` in :mod:`hotline.api.operator`) checks the
token once per request and leaves the actor on ``request.state``; a route that needs to
know who asks takes an :data:`Authenticated` parameter.
"""

from __future__ import annotations

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
