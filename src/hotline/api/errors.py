"""Turning domain errors into HTTP answers, one shape everywhere:
``{"error": "<stable-id>", "message": "...", "hint": "..."}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hotline.errors import HotlineError


def error_response(exc: HotlineError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status)


def install_error_handlers(app: FastAPI) -> None:
    async def on_hotline_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HotlineError)
        return error_response(exc)

    async def on_invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": "invalid-request",
                             "message": f"{where}: {first.get('msg')}".lstrip(": ")},
                            status_code=422)

    app.add_exception_handler(HotlineError, on_hotline_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
