"""The federation API: one endpoint that takes a batch of envelopes and answers with a
signed receipt or a stable rejection for each.

The body is newline-delimited canonical envelopes. Its size is checked against the
declared length and again while streaming (a chunked body without a length cannot get
past the limit either), before any parsing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hotline.api.federation_schema import (
    CHECKPOINT_ANSWERS,
    CHECKPOINT_BODY,
    ENVELOPE_ANSWERS,
    ENVELOPES_BODY,
    LINKTEST_ANSWERS,
    LINKTEST_BODY,
)
from hotline.errors import MALFORMED, OVERSIZE, EnvelopeRejected, HotlineError, rejected
from hotline.federation.admission import Admission, RateLimited, request_lane
from hotline.federation.linktest import LinkTestAnswerer
from hotline.federation.receiver import Outcome, Receiver
from hotline.log.witness import Witness
from hotline.protocol.lanes import BULK, CONTROL, PROTOCOL, Lane
from hotline.protocol.linktest import MAX_PROBE_BYTES

security_log = logging.getLogger("hotline.security")

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


def batch_answer(outcomes: list[Outcome],
                 waiting: dict[tuple[str, Lane], int] | None = None,
                 protocol: int = PROTOCOL) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body that answer a batch: 200 if every envelope got a
    receipt, else the status of the first rejection; one result per envelope; when a
    sender's envelopes are held back behind a missing one, ``waiting_for`` (control
    lane) and ``waiting_for_bulk`` naming the sequence number awaited per sender (the
    gap report, docs/protocol.md); and ``protocol``, the version this node speaks
    (absent from a node of protocol 1, as it was before lanes)."""
    first_error = next((o.error for o in outcomes if o.error is not None), None)
    status = 200 if first_error is None else first_error.status
    body: dict[str, Any] = {"results": [o.as_dict() for o in outcomes]}
    for lane, name in ((CONTROL, "waiting_for"), (BULK, "waiting_for_bulk")):
        gaps = {peer: seq for (peer, of), seq in (waiting or {}).items() if of == lane}
        if gaps:
            body[name] = dict(sorted(gaps.items()))
    if protocol >= PROTOCOL:
        body["protocol"] = protocol
    return status, body


def make_envelopes_endpoint(receiver: Receiver, batch_limit: int,  # type: ignore[no-untyped-def]
                            admission: Admission | None = None):
    """``POST /federation/v1/envelopes``; with ``admission``, a client address over its
    budget is refused 429 before its body is read (declared length) or any signature
    is checked (line count), and envelopes over their verified sender's budget get
    ``rate-limited`` (see :mod:`hotline.federation.admission`)."""
    async def receive_envelopes(request: Request) -> JSONResponse:
        source = request.client.host if request.client else "unknown"
        lane = request_lane(request.url.query)
        try:
            if admission is not None:
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) <= batch_limit:
                    admit_address(admission, source, 0, int(declared), lane)
            body = await read_limited(request, batch_limit)
            raws = split_batch(body)
            if admission is not None:
                admit_address(admission, source, len(raws),
                              0 if request.headers.get("content-length") else len(body), lane)
        except RateLimited as exc:
            return JSONResponse(exc.as_result(), status_code=429,
                                headers={"retry-after": str(exc.retry_after_s)})
        except EnvelopeRejected as exc:
            receiver.log_rejected_request(exc, source)
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        outcomes, waiting = await receiver.accept_batch(raws, source)
        status, answer = batch_answer(outcomes, waiting, receiver.protocol)
        waits = [o.error.retry_after_s for o in outcomes if isinstance(o.error, RateLimited)]
        headers = {"retry-after": str(max(waits))} if waits else None
        return JSONResponse(answer, status_code=status, headers=headers)

    return receive_envelopes


def admit_address(admission: Admission, source: str, envelopes: int, nbytes: int,
                  lane: str = "control") -> None:
    """Charge the client address's budget for ``lane`` requests; raises
    :class:`RateLimited` (after its one security-log line, subject to the log's own
    rate limit) if it is over budget."""
    wait = admission.admit_address(source, envelopes=envelopes, nbytes=nbytes, lane=lane)
    if wait is not None:
        admission.log.warning("rate-limited request from %s: address over its %s budget "
                              "(%d envelope(s), %d bytes), retry after %d s; nothing "
                              "verified or stored", source, lane, envelopes, nbytes, wait)
        raise RateLimited(f"{source} is over its budget before authentication; nothing "
                          "was stored", wait)


MAX_CHECKPOINT_BODY = 64 * 1024


async def cosign_answer(witness: Witness, raw: bytes,
                        source: str = "unknown") -> tuple[int, dict[str, Any]]:
    """Have ``witness`` judge a checkpoint request's body from ``source``; the HTTP status
    and JSON body of the answer (an alarm it raised is carried out before the answer
    goes). The witness logs every refusal once."""
    outcome = await witness.cosign(raw, source)
    if outcome.effects is not None:
        witness.alarms.apply(outcome.effects)
    return outcome.status, outcome.as_dict()


def make_checkpoint_endpoint(witness: Witness):  # type: ignore[no-untyped-def]
    """``POST /federation/v1/checkpoints``: a peer asks this node to cosign its log."""
    async def cosign(request: Request) -> JSONResponse:
        source = request.client.host if request.client else "unknown"
        try:
            raw = await read_limited(request, MAX_CHECKPOINT_BODY)
        except HotlineError as exc:
            witness.log_refused(exc, source)
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        status, body = await cosign_answer(witness, raw, source)
        return JSONResponse(body, status_code=status)

    return cosign


def make_linktest_endpoint(answerer: LinkTestAnswerer,  # type: ignore[no-untyped-def]
                           admission: Admission | None = None):
    """``POST /federation/v1/linktest``: a peer tests this endpoint; answered at once."""
    async def linktest(request: Request) -> JSONResponse:
        source = request.client.host if request.client else "unknown"
        try:
            if admission is not None:
                admit_address(admission, source, 1, MAX_PROBE_BYTES)
            raw = await read_limited(request, MAX_PROBE_BYTES)
        except RateLimited as exc:
            return JSONResponse(exc.as_result(), status_code=429,
                                headers={"retry-after": str(exc.retry_after_s)})
        except HotlineError as exc:
            security_log.warning("refused a link test from %s: %s: %s", source,
                                 exc.error_id, exc.message)
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        answered = answerer.answer(raw, source)
        return JSONResponse(answered.body, status_code=answered.status)

    return linktest


def federation_router(receiver: Receiver, batch_limit: int, witness: Witness | None,
                      admission: Admission | None = None,
                      linktest: LinkTestAnswerer | None = None) -> APIRouter:
    """The federation routes, documented for their own OpenAPI document
    (:mod:`hotline.api.federation_schema`)."""
    router = APIRouter(prefix="/federation/v1", tags=["federation"])
    router.add_api_route("/envelopes", make_envelopes_endpoint(receiver, batch_limit,
                                                              admission),
                         methods=["POST"], responses=ENVELOPE_ANSWERS,
                         openapi_extra=ENVELOPES_BODY, summary="Deliver a batch of envelopes")
    if receiver.protocol >= PROTOCOL:  # a node of protocol 1 has no such route (404)
        async def protocol() -> dict[str, int]:
            """The federation protocol this node speaks (docs/protocol.md §11.1)."""
            return {"protocol": receiver.protocol}
        router.add_api_route("/protocol", protocol, methods=["GET"],
                             summary="The federation protocol this node speaks")
    if witness is not None:
        router.add_api_route("/checkpoints", make_checkpoint_endpoint(witness),
                             methods=["POST"], responses=CHECKPOINT_ANSWERS,
                             openapi_extra=CHECKPOINT_BODY,
                             summary="Ask this node to cosign a checkpoint of the sender's log")
    if linktest is not None:
        router.add_api_route("/linktest", make_linktest_endpoint(linktest, admission),
                             methods=["POST"], responses=LINKTEST_ANSWERS,
                             openapi_extra=LINKTEST_BODY,
                             summary="Test this endpoint: a signed probe, a signed answer")
    return router
