"""The operator API's key routes: rotate this node's key, revoke a compromised one.

Only the node's administrator (the token file) may change the party's keys; an
operator's token is refused 403 with one security-log line.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from hotline.api.auth import Authenticated
from hotline.api.errors import error_responses
from hotline.authz.policy import Admin
from hotline.errors import HotlineError
from hotline.keys.service import KeyService

security_log = logging.getLogger("hotline.security")


class KeyChangeResponse(BaseModel):
    kid: str
    safety_number: str
    peers: list[str]
    revocation_cert: dict[str, Any]
    statement: dict[str, Any]


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert: dict[str, Any] = Field(description="the offline revocation certificate")
    from_ms: int | None = Field(default=None, ge=0, le=2**53 - 1,
                                description="distrust the key from this time (ms since "
                                            "the epoch, this node's clock); default now")


def _admin_only(actor: object, what: str) -> None:
    if not isinstance(actor, Admin):
        label = getattr(actor, "label", "?")
        security_log.warning("refused %s for %s: only the administrator may", what, label)
        raise HotlineError("forbidden", f"only the node's administrator may {what}",
                           status=403).already_logged()


def keys_router(keys: KeyService) -> APIRouter:
    router = APIRouter(responses=error_responses(403))

    @router.post("/keys/rotate", response_model=KeyChangeResponse)
    async def rotate(actor: Authenticated) -> KeyChangeResponse:
        """Rotate this party's signing and encryption keys; every linked peer is told by a
        statement signed by the old key and the new one. Answers the new key's id and
        safety number and its offline revocation certificate."""
        _admin_only(actor, "rotate the party's key")
        return KeyChangeResponse(**(await keys.rotate()).to_dict())

    @router.post("/keys/revoke", response_model=KeyChangeResponse,
                 responses=error_responses(404, 409))
    async def revoke(body: RevokeRequest, actor: Authenticated) -> KeyChangeResponse:
        """Revoke the key an offline revocation certificate names (a new key replaces it
        if it is the current one); every linked peer is told and refuses it at once."""
        _admin_only(actor, "revoke the party's key")
        return KeyChangeResponse(**(await keys.revoke(body.cert, body.from_ms)).to_dict())

    return router
