"""Turning domain errors into HTTP answers, one shape everywhere:
``{"error": "<stable-id>", "message": "...", "hint": "...", "field": "..."}`` (``hint``
and ``field`` only where they apply; ``field`` names the request field a 422 is about).

:func:`error_responses` documents these answers in the OpenAPI documents, so every
status a route can answer is listed there (schemathesis checks it)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from hotline.bounds import log_refused
from hotline.errors import HotlineError, InvalidInput
from hotline.fieldtext import describe


class ErrorBody(BaseModel):
    """Every refusal of the operator and federation APIs (a federation batch answers
    per envelope instead, see ``BatchResults``)."""

    error: str = Field(description="stable kebab-case id: scripts and peers match on it",
                       examples=["invalid-request"])
    message: str = Field(description="what went wrong, for people",
                         examples=["query.after: must be at most 9223372036854775807"])
    hint: str | None = Field(default=None, description="what to do next, where useful")
    field: str | None = Field(default=None, description="with 422: the request field "
                              "refused, as `query.NAME`, `header.NAME`, `path.NAME`, "
                              "`body.NAME`", examples=["query.after"])


#: what each error status means, in every OpenAPI document of the node
ERROR_MEANINGS: dict[int, str] = {
    400: "refused by a rule of the node (the error id says which); nothing was changed",
    401: "the credentials are missing or wrong",
    403: "the caller may not do this",
    404: "no such object",
    409: "conflicts with the node's state (the error id says how); nothing was changed",
    413: "the request body is too large",
    421: "addressed to another party",
    422: "a field is malformed or out of bounds; `field` names it, nothing was changed",
    429: "too many requests: retry after the `Retry-After` header's seconds",
}


security_log = logging.getLogger("hotline.security")


#: the header a 429 carries, as OpenAPI documents it (both APIs)
RETRY_AFTER_HEADER: dict[str, Any] = {"Retry-After": {
    "description": "seconds to wait before sending again",
    "schema": {"type": "integer", "minimum": 0}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may answer ``statuses`` with an :class:`ErrorBody`."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": ERROR_MEANINGS[status]}
        if status == 429:
            entry["headers"] = RETRY_AFTER_HEADER
        out[status] = entry
    return out


def error_response(exc: HotlineError) -> JSONResponse:
    """``exc`` as its JSON answer; a refusal that says when to come back (an attribute
    ``retry_after_s``, whole seconds: a full bulk queue) carries ``Retry-After``."""
    wait = getattr(exc, "retry_after_s", None)
    headers = {"retry-after": str(wait)} if isinstance(wait, int) else None
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


def invalid_input(exc: RequestValidationError) -> InvalidInput:
    """The first problem FastAPI found in a request, as one 422 naming its field, in
    the user's terms (:func:`hotline.fieldtext.describe`), never the validator's."""
    errors = exc.errors()
    if not errors:
        return InvalidInput("request", "the request could not be read")
    return InvalidInput(*describe(errors[0]))


#: error ids of the answers the framework gives by itself (no route, wrong method, ...)
HTTP_ERROR_IDS = {400: "bad-request", 401: "unauthorized", 404: "not-found",
                  405: "method-not-allowed", 413: "oversize"}


def framework_error(exc: HTTPException) -> HotlineError:
    """An answer the framework chose, in the node's shape. A body it could not parse
    (not UTF-8, say) is a 422 like any other malformed field."""
    if exc.status_code == 400:
        return InvalidInput("body", "the body could not be read (UTF-8 JSON expected)")
    error_id = HTTP_ERROR_IDS.get(exc.status_code, f"http-{exc.status_code}")
    return HotlineError(error_id, str(exc.detail), status=exc.status_code)


def refused(request: Request, exc: InvalidInput) -> JSONResponse:
    """Answer a request refused for a field, with its one security-log line."""
    log_refused(request.client.host if request.client else "unknown", request.method,
                request.url.path, exc)
    return error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    async def on_hotline_error(request: Request, exc: Exception) -> JSONResponse:
        """Every refusal (4xx) leaves one security-log line: written here unless it was
        where the refusal was decided (``exc.logged``)."""
        assert isinstance(exc, HotlineError)
        if isinstance(exc, InvalidInput) and not exc.logged:
            return refused(request, exc)
        if 400 <= exc.status < 500 and not exc.logged:
            security_log.warning("refused request from %s: %s %s: %s: %s",
                                 request.client.host if request.client else "unknown",
                                 request.method, request.url.path[:200], exc.error_id,
                                 exc.message[:300])
        return error_response(exc)

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return refused(request, invalid_input(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        """The framework's own refusals (no such route, a method the route does not
        take, a body it could not read) are refusals like any other: one line each."""
        assert isinstance(exc, HTTPException)
        response = await on_hotline_error(request, framework_error(exc))
        response.headers.update(exc.headers or {})  # e.g. Allow with a 405
        return response

    app.add_exception_handler(HotlineError, on_hotline_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
