"""Assembles the ASGI application from the two edges; knows nothing about how the
services behind them are built (that is :mod:`hotline.node`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotline import __version__
from hotline.api.errors import install_error_handlers
from hotline.api.federation import federation_router
from hotline.api.federation_schema import OPENAPI_PATH, openapi_endpoint
from hotline.api.operator import OperatorServices, operator_router
from hotline.api.requestids import RequestIds
from hotline.console.security import SECURITY_HEADERS
from hotline.console.web import ConsoleServices, console_router, static_files
from hotline.federation.admission import Admission
from hotline.federation.linktest import LinkTestAnswerer
from hotline.federation.receiver import Receiver
from hotline.log.witness import Witness
from hotline.status import tasks_down


def build_app(*, operator: OperatorServices, receiver: Receiver, batch_limit: int,
              lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
              witness: Witness | None = None,
              console: ConsoleServices | None = None,
              admission: Admission | None = None,
              linktest: LinkTestAnswerer | None = None,
              metrics: Callable[[Request], Awaitable[Response]] | None = None) -> FastAPI:
    app = FastAPI(title="Hotline node", version=__version__, lifespan=lifespan,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
                  description="Operator API of a Hotline node. Every route needs the "
                              "operator token as `Authorization: Bearer <token>`. Every "
                              "refusal is `{error, message, hint?, field?}`; a 422 names "
                              "the field refused. The federation API (peers') has its own "
                              "document at /federation/v1/openapi.json.")
    install_error_handlers(app)
    app.include_router(operator_router(operator))
    federation = federation_router(receiver, batch_limit, witness, admission, linktest)
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
            body["tasks_down"] = sorted(t.name for t in tasks_down(tasks))
            body["alarms"] = len(alarms)
        return JSONResponse(body)

    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    if metrics is not None:  # Prometheus text; who may read it: hotline.api.metrics
        app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestIds)
    if console is not None:
        app.include_router(console_router(console))
        app.mount("/static", static_files(), name="static")

        app.add_middleware(ConsoleHeaders)
    return app


class ConsoleHeaders:
    """Browser defences on every console page, fragment and file (the JSON APIs are not
    rendered by browsers, and the API docs page needs its own scripts).

    A plain ASGI middleware: a request to ``/api/`` or ``/federation/`` passes straight
    through, and a console response only has its start message's headers completed
    (those it already has are kept). Starlette's ``@app.middleware("http")`` ran every
    request, the hot federation and send routes too, through an extra task and memory
    streams (about a third of a millisecond of CPU each on the reference machine).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(("/api/", "/federation/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


