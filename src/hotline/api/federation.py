"""The federation API: one endpoint that takes a batch of envelopes and answers with a
signed receipt or a stable rejection for each.

The body is newline-delimited canonical envelopes. Its size is checked against the
declared length and again while streaming (a chunked body without a length cannot get
past the limit either), before any parsing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hotline.api.federation_schema import (
    CHECKPOINT_ANSWERS,
    CHECKPOINT_BODY,
    ENVELOPE_ANSWERS,
    ENVELOPES_BODY,
)
from hotline.errors import MALFORMED, OVERSIZE, EnvelopeRejected, HotlineError, rejected
from hotline.federation.receiver import Outcome, Receiver
from hotline.log.witness import Witness
from hotline.protocol import canonical

MAX_BATCH_ENVELOPES = 4096


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    # isascii(): "²".isdigit() is true too, and int() refuses it
    if declared is not None and (not (declared.isascii() and declared.isdigit())
                                 or int(declared) > limit):
        raise rejected(OVERSIZE, f"request body of {declared} bytes exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise rejected(OVERSIZE, f"request body exceeds {limit} bytes")
    return bytes(body)


def split_batch(body: bytes) -> list[bytes]:
    if not body:
        raise rejected(MALFORMED, "empty batch")
    lines = body.removesuffix(b"\n").split(b"\n")
    if len(lines) > MAX_BATCH_ENVELOPES:
        raise rejected(MALFORMED, f"batch of {len(lines)} envelopes exceeds "
                                  f"{MAX_BATCH_ENVELOPES}")
    return lines


def batch_answer(outcomes: list[Outcome]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body that answer a batch: 200 if every envelope got a
    receipt, else the status of the first rejection; one result per envelope."""
    first_error = next((o.error for o in outcomes if o.error is not None), None)
    status = 200 if first_error is None else first_error.status
    return status, {"results": [o.as_dict() for o in outcomes]}


def make_envelopes_endpoint(receiver: Receiver, batch_limit: int):  # type: ignore[no-untyped-def]
    async def receive_envelopes(request: Request) -> JSONResponse:
        source = request.client.host if request.client else "unknown"
        try:
            raws = split_batch(await read_limited(request, batch_limit))
        except EnvelopeRejected as exc:
            receiver.log_rejected_request(exc, source)
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        status, body = batch_answer(await receiver.accept(raws, source))
        return JSONResponse(body, status_code=status)

    return receive_envelopes


MAX_CHECKPOINT_BODY = 64 * 1024


async def cosign_answer(witness: Witness, raw: bytes) -> tuple[int, dict[str, Any]]:
    """Have ``witness`` judge a checkpoint request's body; the HTTP status and JSON body
    of the answer (an alarm it raised is carried out before the answer goes)."""
    try:
        outcome = await witness.cosign(canonical.decode(raw))
    except HotlineError as exc:
        return exc.status, exc.to_dict()
    status = 200 if outcome.error is None else outcome.error.status
    if outcome.effects is not None:
        witness.alarms.apply(outcome.effects)
    return status, outcome.as_dict()


def make_checkpoint_endpoint(witness: Witness):  # type: ignore[no-untyped-def]
    """``POST /federation/v1/checkpoints``: a peer asks this node to cosign its log."""
    async def cosign(request: Request) -> JSONResponse:
        try:
            raw = await read_limited(request, MAX_CHECKPOINT_BODY)
        except HotlineError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        status, body = await cosign_answer(witness, raw)
        return JSONResponse(body, status_code=status)

    return cosign


def federation_router(receiver: Receiver, batch_limit: int,
                      witness: Witness | None) -> APIRouter:
    """The federation routes, documented for their own OpenAPI document
    (:mod:`hotline.api.federation_schema`)."""
    router = APIRouter(prefix="/federation/v1", tags=["federation"])
    router.add_api_route("/envelopes", make_envelopes_endpoint(receiver, batch_limit),
                         methods=["POST"], responses=ENVELOPE_ANSWERS,
                         openapi_extra=ENVELOPES_BODY, summary="Deliver a batch of envelopes")
    if witness is not None:
        router.add_api_route("/checkpoints", make_checkpoint_endpoint(witness),
                             methods=["POST"], responses=CHECKPOINT_ANSWERS,
                             openapi_extra=CHECKPOINT_BODY,
                             summary="Ask this node to cosign a checkpoint of the sender's log")
    return router
