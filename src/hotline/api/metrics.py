"""``GET /metrics``: who may read the node's Prometheus metrics.

Open to a client on the node's own host (a loopback address, and no proxy between: a
request that carries ``X-Forwarded-For``, ``Forwarded``, ``X-Real-IP`` or another
header of :data:`PROXY_HEADERS` (``Via``, ``X-Forwarded-Proto`` …) came through
a proxy — nginx on the same host connects from 127.0.0.1 — and is not local, whatever
address the header names), or to any client presenting ``Authorization: Bearer`` with
the metrics token (``[metrics] token_file``) or the operator token. Anything else is
refused — 401 for a wrong token, 403 for no token from elsewhere — with one
security-log line (the error handler's); the tokens are never logged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence

from fastapi import Request, Response

from hotline.errors import HotlineError
from hotline.nodedir.token import TokenChecker

#: headers a proxy adds: the presence of any means the connection's address is the
#: proxy's (not only the three of the example's nginx: a proxy set up to send only
#: ``X-Forwarded-Proto``, a ``Via``, a CDN's client-address header still mark one)
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "via", "x-forwarded-host",
                 "x-forwarded-proto", "x-forwarded-port", "x-forwarded-server",
                 "x-original-forwarded-for", "x-client-ip", "true-client-ip",
                 "cf-connecting-ip", "x-cluster-client-ip")

Scrape = Callable[[], Awaitable[tuple[bytes, str]]]


def is_local(request: Request) -> bool:
    """Whether ``request`` came from this host with no proxy in between."""
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def metrics_endpoint(scrape: Scrape, tokens: Sequence[TokenChecker]
                     ) -> Callable[[Request], Awaitable[Response]]:
    """The route: ``tokens`` are the checkers of the tokens that open it from anywhere."""
    async def metrics(request: Request) -> Response:
        presented = _bearer(request)
        if presented is not None:
            if not presented or not any(t.check(presented) for t in tokens):
                raise HotlineError("unauthorized", "the metrics token is wrong",
                                   hint="send the token of [metrics] token_file as "
                                        "`Authorization: Bearer <token>`", status=401)
        elif not is_local(request):
            raise HotlineError("metrics-forbidden",
                               "/metrics is open without a token only on the node's own "
                               "host, not through a proxy", hint="send the token of "
                               "[metrics] token_file as `Authorization: Bearer <token>`",
                               status=403)
        body, content_type = await scrape()
        return Response(body, media_type=content_type)

    return metrics
