"""The federation API's own OpenAPI document (``/federation/v1/openapi.json``).

The federation routes read their bodies raw (size limits before any parsing, canonical
JSON checked byte for byte), so FastAPI cannot infer their request bodies; they are
described here by hand, with every status the routes answer. The operator API's
document leaves them out: its readers are operators, these routes' are peers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hotline import __version__
from hotline.api.errors import ERROR_MEANINGS, RETRY_AFTER_HEADER, ErrorBody
from hotline.bounds import SAFE_MAX
from hotline.protocol.tree import MAX_TREE_SIZE, max_consistency_proof

OPENAPI_PATH = "/federation/v1/openapi.json"


class EnvelopeResult(BaseModel):
    """One line's answer: a receipt, or why the envelope was refused (nothing stored)."""

    receipt: str | None = Field(default=None, description="the signed receipt's "
                                "canonical JSON, as a string: verify that string")
    duplicate: bool | None = Field(default=None, description="stored before: the "
                                   "receipt is the original one")
    error: str | None = Field(default=None, description="stable id (docs/protocol.md §10)",
                              examples=["sequence-too-far-ahead"])
    message: str | None = None


class BatchResults(BaseModel):
    """One result per line of the batch, in order; the gap report per lane; the
    protocol this node speaks (docs/protocol.md §7, §11.1)."""

    results: list[EnvelopeResult]
    waiting_for: dict[str, int] | None = Field(default=None, description="per sender: "
                                               "the control-lane seq this node waits on")
    waiting_for_bulk: dict[str, int] | None = Field(default=None, description="per "
                                                    "sender: the bulk-lane seq it waits on")
    protocol: int | None = Field(default=None, ge=1, description="the federation "
                                 "protocol this node speaks (absent: 1, before lanes)")


class Cosigned(BaseModel):
    cosignature: dict[str, Any] = Field(description="the witness's signed cosignature")


class LinkTestAnswer(BaseModel):
    answer: dict[str, Any] = Field(description="this node's signed answer to the probe "
                                   "(docs/protocol.md §7.2)")


class CheckpointRefusal(ErrorBody):
    latest_size: int | None = Field(default=None, ge=0, le=SAFE_MAX, description=(
        "with `stale-base`: prove consistency from this size"))


def _answers(statuses: dict[int, type[BaseModel] | tuple[type[BaseModel], ...]]
             ) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status, models in statuses.items():
        kinds = models if isinstance(models, tuple) else (models,)
        schema: dict[str, Any] = ({"$ref": f"#/components/schemas/{kinds[0].__name__}"}
                                  if len(kinds) == 1 else
                                  {"anyOf": [{"$ref": f"#/components/schemas/{k.__name__}"}
                                             for k in kinds]})
        entry: dict[str, Any] = {"description": ERROR_MEANINGS.get(status, "accepted"),
                                 "content": {"application/json": {"schema": schema}}}
        if status == 429:
            entry["headers"] = RETRY_AFTER_HEADER
        out[status] = entry
    return out


#: a request-level refusal is an ErrorBody; a batch that was read has one result a line
_BATCH_OR_ERROR = (BatchResults, ErrorBody)
ENVELOPE_ANSWERS = _answers({
    200: BatchResults, 400: _BATCH_OR_ERROR, 401: BatchResults, 403: BatchResults,
    409: BatchResults, 413: _BATCH_OR_ERROR, 421: BatchResults, 429: _BATCH_OR_ERROR})
CHECKPOINT_ANSWERS = _answers({
    200: Cosigned, 400: ErrorBody, 403: ErrorBody, 409: CheckpointRefusal,
    413: ErrorBody, 429: ErrorBody})

ENVELOPES_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/x-ndjson": {"schema": {
        "type": "string", "description": "the envelopes' canonical JSON, one a line, "
        "joined with a single `\\n` and no trailing newline; at most 4096 lines and the "
        "node's batch limit (8 MiB by default)"}}}}}

CHECKPOINT_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {
        "type": "object", "description": "canonical JSON (sorted keys, no spaces), at most "
        "64 KiB", "additionalProperties": False,
        "required": ["checkpoint", "from_size", "proof"],
        "properties": {
            "checkpoint": {"type": "object", "description": "the sender's signed "
                           "checkpoint of its own log (docs/log.md)"},
            "from_size": {"type": "integer", "minimum": 0, "maximum": MAX_TREE_SIZE,
                          "description": "the largest size this node cosigned for the "
                                         "sender; at most the checkpoint's size"},
            "proof": {"type": "array",
                      "maxItems": max_consistency_proof(MAX_TREE_SIZE),
                      "items": {"type": "string", "description": "base64url SHA-256"},
                      "description": "consistency proof from `from_size`"}}}}}}}


LINKTEST_ANSWERS = _answers({200: LinkTestAnswer, 400: ErrorBody, 401: ErrorBody,
                             403: ErrorBody, 413: ErrorBody, 429: ErrorBody})

LINKTEST_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {
        "type": "object", "description": "the sender's signed probe, canonical JSON (sorted "
        "keys, no spaces), at most 4 KiB", "additionalProperties": False,
        "required": ["v", "from", "to", "endpoint", "nonce", "at", "kid", "sig"]}}}}}


def federation_openapi(router: APIRouter) -> dict[str, Any]:
    """The OpenAPI document of ``router``'s federation routes, with their models."""
    document = get_openapi(
        title="Hotline node: federation API", version=__version__, routes=router.routes,
        description="What linked peers send this node. No authentication at the HTTP "
                    "level: every envelope and checkpoint is authenticated by its "
                    "signature (docs/protocol.md).")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (BatchResults, EnvelopeResult, ErrorBody, Cosigned, CheckpointRefusal,
                  LinkTestAnswer):
        defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(defs.pop("$defs", {}))
        schemas[model.__name__] = defs
    return document


def openapi_endpoint(router: APIRouter) -> Callable[[Request], Any]:
    """``GET /federation/v1/openapi.json``: the document, built once on first use."""
    cached: list[dict[str, Any]] = []

    async def federation_schema(_request: Request) -> JSONResponse:
        if not cached:
            cached.append(federation_openapi(router))
        return JSONResponse(cached[0])

    return federation_schema
