"""The operator API's link routes: what removing a link would end, and removing it.
The administrator's token only (a link is the node's, not an operator's)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from hotline.api.auth import Authenticated
from hotline.api.errors import error_responses
from hotline.authz.guard import Guard
from hotline.links.removal import DEFAULT_WAIT_S, MAX_WAIT_S, LinkRemoval

#: as ``hotline.protocol.envelope.PARTY_RE``, in the dialect the schema validator reads
PARTY_PATTERN = r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$"
Party = Annotated[str, Path(min_length=1, max_length=32, pattern=PARTY_PATTERN,
                            examples=["PL-GS"])]


class RemoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wait_seconds: float = Field(default=DEFAULT_WAIT_S, gt=0, le=MAX_WAIT_S,
                                description="How long to wait for the batch on the line to be "
                                            "answered, then again for the peer to take "
                                            "the signed link-removed notice.")


def links_router(removal: LinkRemoval, guard: Guard) -> APIRouter:
    router = APIRouter()

    @router.get("/links/{party}/removal", responses=error_responses(404))
    async def removal_preview(party: Party, actor: Authenticated) -> dict[str, Any]:
        """What removing the link with ``party`` would end: envelopes still waiting for
        it, open calls with it (both directions), conversations it is a member of, and
        whether the directory holds a link policy for it. Changes nothing."""
        guard.require_admin(actor, "remove link", "link", party)
        return (await removal.preview(party)).as_dict()

    @router.post("/links/{party}/remove", responses=error_responses(404))
    async def remove_link(party: Party, body: RemoveRequest,
                          actor: Authenticated) -> dict[str, Any]:
        """Remove the link with ``party``: waiting envelopes are marked undeliverable,
        open calls end ``cancelled`` ("link removed"), the peer is sent a signed notice
        (``peer_told`` says whether its receipt came back within the wait, ``not_told``
        why not), and the party is refused from then on until a new offer is accepted."""
        guard.require_admin(actor, "remove link", "link", party)
        return (await removal.remove(party, body.wait_seconds)).as_dict()

    return router
