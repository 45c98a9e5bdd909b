"""Turning domain errors into HTTP answers, one shape everywhere:
``{"error": "<stable-id>", "message": "...", "hint": "...", "field": "..."}`` (``hint``
and ``field`` only where they apply; ``field`` names the request field a 422 is about).

:func:`error_responses` documents these answers in the OpenAPI documents, so every
status a route can answer is listed there (schemathesis checks it)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hotline.errors import HotlineError, InvalidInput


class ErrorBody(BaseModel):
    """Every refusal of the operator and federation APIs (a federation batch answers
    per envelope instead, see ``BatchResults``)."""

    error: str = Field(description="stable kebab-case id: scripts and peers match on it",
                       examples=["invalid-request"])
    message: str = Field(description="what went wrong, for people",
                         examples=["query.after: Input should be less than or equal to "
                                   "9223372036854775807"])
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


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may answer ``statuses`` with an :class:`ErrorBody`."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": ERROR_MEANINGS[status]}
        if status == 429:
            entry["headers"] = {"Retry-After": {
                "description": "seconds to wait before sending again",
                "schema": {"type": "integer", "minimum": 0}}}
        out[status] = entry
    return out


def error_response(exc: HotlineError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status)


def invalid_input(exc: RequestValidationError) -> InvalidInput:
    """The first problem FastAPI found in a request, as one 422 naming its field."""
    first = exc.errors()[0] if exc.errors() else {"loc": ("request",),
                                                  "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ())) or "request"
    return InvalidInput(where, str(first.get("msg", "invalid")))


def install_error_handlers(app: FastAPI) -> None:
    async def on_hotline_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HotlineError)
        return error_response(exc)

    async def on_invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(invalid_input(exc))

    app.add_exception_handler(HotlineError, on_hotline_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
