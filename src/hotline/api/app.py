"""Assembles the ASGI application from the two edges; knows nothing about how the
services behind them are built (that is :mod:`hotline.node`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from hotline import __version__
from hotline.api.errors import install_error_handlers
from hotline.api.federation import federation_router
from hotline.api.federation_schema import OPENAPI_PATH, openapi_endpoint
from hotline.api.operator import OperatorServices, operator_router
from hotline.console.security import add_security_headers
from hotline.console.web import ConsoleServices, console_router, static_files
from hotline.federation.admission import Admission
from hotline.federation.receiver import Receiver
from hotline.log.witness import Witness


def build_app(*, operator: OperatorServices, receiver: Receiver, batch_limit: int,
              lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
              witness: Witness | None = None,
              console: ConsoleServices | None = None,
              admission: Admission | None = None) -> FastAPI:
    app = FastAPI(title="Hotline node", version=__version__, lifespan=lifespan,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
                  description="Operator API of a Hotline node. Every route needs the "
                              "operator token as `Authorization: Bearer <token>`. Every "
                              "refusal is `{error, message, hint?, field?}`; a 422 names "
                              "the field refused. The federation API (peers') has its own "
                              "document at /federation/v1/openapi.json.")
    install_error_handlers(app)
    app.include_router(operator_router(operator))
    federation = federation_router(receiver, batch_limit, witness, admission)
    app.include_router(federation, include_in_schema=False)  # peers: their own document
    app.add_api_route(OPENAPI_PATH, openapi_endpoint(federation), methods=["GET"],
                      include_in_schema=False)

    async def healthz() -> JSONResponse:
        """200 while the node serves; the body lists every supervised task and how many
        alarms stand (no secrets: it is open, for load balancers and monitors)."""
        body: dict[str, Any] = {"ok": True, "party": operator.party}
        if operator.health is not None:
            tasks, alarms = await operator.health()
            body["tasks"] = {t.name: t.state for t in tasks}
            body["tasks_down"] = sorted(t.name for t in tasks if t.state == "restarting")
            body["alarms"] = len(alarms)
        return JSONResponse(body)

    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    if console is not None:
        app.include_router(console_router(console))
        app.mount("/static", static_files(), name="static")

        @app.middleware("http")
        async def console_headers(request: Request, call_next: Callable[[Request], Any]
                                  ) -> Response:
            """Browser defences on every console page, fragment and file (the JSON APIs
            are not rendered by browsers, and the API docs page needs its own scripts)."""
            response: Response = await call_next(request)
            if not request.url.path.startswith(("/api/", "/federation/")):
                add_security_headers(response)
            return response
    return app


