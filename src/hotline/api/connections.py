"""Connection caps and timeouts for the node's HTTP server (uvicorn), enforced at the
socket, where uvicorn enforces none of them.

Why our own guard rather than uvicorn's settings alone (measured on uvicorn 0.54 with
httptools, the parser it picks when installed):

* ``limit_concurrency`` counts all connections and tasks together and answers 503 to
  everyone once over — one client address can take the whole budget. The guard counts
  connections per client address and in total, and refuses only the address over its
  cap (429) or, over the total, the newcomer (503), at accept time, before any parsing.
* uvicorn starts its ``timeout_keep_alive`` timer only after a response: a connection
  that never sends a byte, or sends its headers one byte a minute (slow-loris), is kept
  for ever, and the httptools parser puts no bound on header size. The guard closes a
  connection with no request under way after ``idle_timeout_seconds``, one whose
  request headers are not complete ``header_timeout_seconds`` after their first byte
  (408), or that sent ``max_header_bytes`` without completing them (431).
* a body trickled in slowly holds an application task: the ASGI side of the guard
  gives each request ``body_timeout_seconds`` from its headers to the end of its body,
  then answers 408 and closes.

* an envelope batch from a client address over its budget is refused 429 on the first
  bytes of its request line, below the parser (no HTTP parsing, no ASGI task: under a
  flood, most requests end here), and the connection is closed so its body is never
  read; an answer the application gives before reading a request's body closes too.

How: uvicorn takes a protocol class (``Config(http=...)``, a documented parameter); the
guard's class wraps the protocol uvicorn would have used (``AutoHTTPProtocol``) and passes
every event through, watching only connection opens and closes and bytes received. The
ASGI wrapper tells it when a request's headers are complete (the application is called)
and when its response has ended, matched by the client's (address, port).

Every refusal and every timeout that ends a request leaves one line on the
``hotline.security`` logger, through the admission's rate-limited log (a flood of them
is summarised with a count). Idle connections are closed without a line: closing idle
keep-alive connections is ordinary housekeeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

from hotline.clock import Clock
from hotline.federation.admission import Admission, ThrottledLog, request_lane
from hotline.nodedir.config import AdmissionConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
FEDERATION_BATCH = "/federation/v1/envelopes"
_BATCH_LINE = b"POST " + FEDERATION_BATCH.encode()


def raw_answer(status: int, reason: str, error: str, message: str,
               retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, for refusals made below
    the HTTP parser (the JSON body has the node's usual error shape)."""
    fields: dict[str, object] = {"error": error, "message": message}
    if retry_after is not None:
        fields["retry_after"] = retry_after
    body = json.dumps(fields).encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json",
            f"content-length: {len(body)}", "connection: close"]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class GuardedConnection(asyncio.Protocol):
    """One accepted connection: the inner (uvicorn) protocol plus the guard's watch.

    The inner protocol is made when the connection's first bytes are let through, not
    at accept: a connection refused at accept or on its request line (a flooder's, one
    per request) then never costs uvicorn's protocol, parser and address look-ups
    (measured: about a third of the node's time per refused request)."""

    def __init__(self, guard: ConnectionGuard, make_inner: Callable[[], asyncio.Protocol]
                 ) -> None:
        self._guard = guard
        self._make_inner = make_inner
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.key: tuple[str, int] = ("unknown", 0)
        self.refused = False               # at accept: never counted, never passed on
        self.ended = False                 # answered below the parser, closing
        self.requests = 0                  # requests whose application is running
        self.waiting_since = 0.0           # no request under way since (monotonic s)
        self.first_byte_at: float | None = None  # of the next request's headers
        self.bytes_waiting = 0             # received since waiting_since
        self.headers_seen = False          # the next request's headers are complete
        self._tail = b""                   # the last bytes received before them
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.key = (str(peer[0]), int(peer[1]))
        refusal = self._guard.opened(self)
        if refusal is not None:
            self.refused = True
            self.transport.write(refusal)
            self.transport.close()
            return
        self.waiting_since = self._guard.clock.monotonic()
        self.schedule()

    def data_received(self, data: bytes) -> None:
        if self.refused or self.ended:
            return
        if self.requests == 0 and not self.headers_seen:
            if self.first_byte_at is None:
                self.first_byte_at = self._guard.clock.monotonic()
                if self._guard.refused_on_request_line(self, data):
                    return
            # the blank line that ends the headers, perhaps split across two reads
            self.headers_seen = b"\r\n\r\n" in self._tail + data
            self._tail = data[-3:]
            self.bytes_waiting += len(data)
            if not self.headers_seen and \
                    self.bytes_waiting > self._guard.config.max_header_bytes:
                self.end(431, "Request Header Fields Too Large", "headers-too-large",
                         f"more than {self._guard.config.max_header_bytes} bytes before "
                         "the request's headers were complete")
                return
        if self.inner is None:
            assert self.transport is not None  # (data comes after connection_made)
            self.inner = self._make_inner()
            self.inner.connection_made(self.transport)
        self.inner.data_received(data)
        if self.requests == 0 and self.transport is not None and self.transport.is_closing():
            # the HTTP parser refused the bytes (a control character in a header, a
            # malformed request line, bad chunking): it answered 400 and closed before
            # any application saw a request — a refusal like any other, so one line
            self.ended = True
            self._guard.log.warning("closed connection from %s: malformed-request: the "
                                    "HTTP parser refused the request", self.key[0])

    def eof_received(self) -> bool | None:
        if self.ended or self.inner is None:
            return None  # (closes the connection)
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._guard.closed(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # -- the watch ----------------------------------------------------------------------
    def request_started(self) -> None:
        self.requests += 1

    def request_ended(self) -> None:
        self.requests = max(0, self.requests - 1)
        if self.requests == 0:
            self.waiting_since = self._guard.clock.monotonic()
            self.first_byte_at = None
            self.bytes_waiting = 0
            self.headers_seen = False
            self._tail = b""
            self.schedule()

    def deadline(self) -> float | None:
        """When this connection must have done something, or None while a request's
        application runs (its body has its own deadline; a response may stream)."""
        if self.requests or self.headers_seen:
            return None  # (headers complete: the application is about to be called)
        c = self._guard.config
        if self.first_byte_at is None:
            return self.waiting_since + c.idle_timeout_seconds
        return self.first_byte_at + c.header_timeout_seconds

    def schedule(self) -> None:
        """(Re)arm the one timer of this connection for its current deadline."""
        if self._timer is not None or self.transport is None or self.transport.is_closing():
            return
        deadline = self.deadline()
        if deadline is None:
            return
        delay = max(0.0, deadline - self._guard.clock.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        deadline = self.deadline()
        if deadline is None or self.transport is None or self.transport.is_closing():
            return
        if self._guard.clock.monotonic() < deadline:
            self.schedule()  # the deadline moved since the timer was set
        elif self.first_byte_at is None:
            self.transport.close()  # idle: ordinary housekeeping, no log line
        else:
            self.end(408, "Request Timeout", "header-timeout",
                     f"request headers not complete within "
                     f"{self._guard.config.header_timeout_seconds:g} s")

    def end(self, status: int, reason: str, error: str, message: str) -> None:
        """Refuse the request under way below the parser and close (one log line)."""
        self._guard.log.warning("closed connection from %s: %s: %s", self.key[0], error,
                                message)
        self.answer_and_close(raw_answer(status, reason, error, message))

    def answer_and_close(self, answer: bytes) -> None:
        """Write ``answer`` and close; nothing more reaches the parser (the inner
        protocol still sees the connection lost, for its own bookkeeping)."""
        self.ended = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


class ConnectionGuard:
    """The caps and timeouts of ``[admission]`` for one server; event loop only."""

    def __init__(self, config: AdmissionConfig, clock: Clock, log: ThrottledLog,
                 admission: Admission | None = None) -> None:
        self.config = config
        self.admission = admission
        self.clock = clock
        self.log = log
        self.per_address: dict[str, int] = {}
        self.connections: dict[tuple[str, int], GuardedConnection] = {}

    def opened(self, conn: GuardedConnection) -> bytes | None:
        """Count a new connection, or return the answer that refuses it."""
        address = conn.key[0]
        count = self.per_address.get(address, 0)
        c = self.config
        if count >= c.max_connections_per_address:
            self.log.warning("refused connection from %s: %d connections open from this "
                             "address (max_connections_per_address)", address, count)
            return raw_answer(429, "Too Many Requests", "too-many-connections",
                              f"{count} connections are open from {address}", 1)
        if len(self.connections) >= c.max_connections:
            self.log.warning("refused connection from %s: %d connections open in total "
                             "(max_connections)", address, len(self.connections))
            return raw_answer(503, "Service Unavailable", "too-many-connections",
                              "the node has too many connections open", 1)
        self.per_address[address] = count + 1
        self.connections[conn.key] = conn
        return None

    def refused_on_request_line(self, conn: GuardedConnection, data: bytes) -> bool:
        """Refuse an envelope batch 429 on the first bytes of its request line if its
        client address is over budget (:meth:`Admission.address_exhausted`), and close:
        the cheapest refusal there is above the socket (no HTTP parser, no ASGI task;
        under a flood this is most requests). One log line, as :func:`_refuse_batch`
        (which catches what this does not see: a request line split across reads)."""
        if self.admission is None or not data.startswith(_BATCH_LINE) \
                or data[len(_BATCH_LINE):len(_BATCH_LINE) + 1] not in (b" ", b"?"):
            return False
        rest = data[len(_BATCH_LINE):]
        end = rest.find(b" ")
        if end < 0:
            return False  # the query may be cut: the application's check sees it whole
        lane = request_lane(rest[1:end])
        address = conn.key[0]
        wait = self.admission.address_exhausted(address, lane)
        if wait is None:
            return False
        self.log.warning("rate-limited request from %s: address over its %s budget, retry "
                         "after %d s; refused on its request line, nothing read or "
                         "verified", address, lane, wait)
        conn.answer_and_close(raw_answer(
            429, "Too Many Requests", "rate-limited", f"{address} is over its budget "
            "before authentication; nothing was stored", wait))
        return True

    def closed(self, conn: GuardedConnection) -> None:
        if conn.refused or self.connections.get(conn.key) is not conn:
            return
        del self.connections[conn.key]
        address = conn.key[0]
        left = self.per_address.get(address, 1) - 1
        if left > 0:
            self.per_address[address] = left
        else:
            self.per_address.pop(address, None)

    def protocol(self, inner: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
        """A protocol class for ``uvicorn.Config(http=...)`` that wraps ``inner``
        (built with whatever keyword arguments uvicorn passes)."""
        guard = self

        class Guarded(GuardedConnection):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(guard, lambda: inner(**kwargs))

        return Guarded

    def app(self, app: ASGIApp) -> ASGIApp:
        """Wrap the ASGI application: mark requests on their connection and bound the
        time a request's body may take."""
        guard = self

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            client = scope.get("client")
            conn = guard.connections.get(tuple(client)) if scope["type"] == "http" \
                and client else None
            if conn is None:
                await app(scope, receive, send)
                return
            conn.request_started()
            try:
                wait = guard.admission.address_exhausted(
                    conn.key[0], request_lane(scope.get("query_string", b""))) \
                    if scope.get("path") == FEDERATION_BATCH and guard.admission else None
                if wait is not None:  # refused on the headers: no routing, no body read
                    await _refuse_batch(guard, conn.key[0], wait, send)
                    return
                await _BodyDeadline(guard, conn, receive, send).run(app, scope)
            finally:
                conn.request_ended()

        return guarded


async def _refuse_batch(guard: ConnectionGuard, address: str, wait: int, send: Send) -> None:
    """429 for an envelope batch from an address whose budget is empty, before the
    application is called (the cheapest refusal above the socket), with its log line.

    The answer says ``connection: close`` and uvicorn closes the socket after it, so the
    refused body is never read: on keep-alive the node would read and discard every
    byte of every refused batch (measured: a flooder on four keep-alive connections got
    4 191 refusals/s, 128 KiB each, through uvloop and the parser). A flooder must now
    reconnect per request, which costs it a handshake and is bounded by
    ``max_connections_per_address``; a sender told to retry later loses nothing."""
    guard.log.warning("rate-limited request from %s: address over its budget, retry "
                      "after %d s; refused on its headers, nothing read or verified",
                      address, wait)
    body = json.dumps({"error": "rate-limited", "message": f"{address} is over its budget "
                       "before authentication; nothing was stored",
                       "retry_after": wait}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                            (b"retry-after", str(wait).encode())]})
    await send({"type": "http.response.body", "body": body})


class _BodyDeadline:
    """One request: its body must be complete ``body_timeout_seconds`` after its
    headers; if not, the client gets 408 and the connection is closed, and the
    application sees the client gone.

    An answer given before the request's body was read through (a refusal on the
    declared length: 413, 429) says ``connection: close``, and uvicorn closes after
    it: the rest of the refused body is then never read, and cannot be taken for the
    next request's headers (which the guard would cut as too large, 431, or too slow)."""

    def __init__(self, guard: ConnectionGuard, conn: GuardedConnection, receive: Receive,
                 send: Send) -> None:
        self._guard = guard
        self._conn = conn
        self._receive = receive
        self._send = send
        self._deadline = guard.clock.monotonic() + guard.config.body_timeout_seconds
        self._body_done = True  # until run() sees the request has a body
        self._timed_out = False
        self._started = False

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        self._body_done = not _has_body(scope)
        try:
            await app(scope, self.receive, self.send)
        except Exception:
            if not self._timed_out:
                raise  # after a time-out the application's complaint is expected

    async def receive(self) -> Message:
        if self._timed_out:
            return {"type": "http.disconnect"}
        if self._body_done:
            return await self._receive()
        try:
            async with asyncio.timeout(max(0.0, self._deadline - self._guard.clock.monotonic())):
                message = await self._receive()
        except TimeoutError:
            await self._time_out()
            return {"type": "http.disconnect"}
        if message.get("type") != "http.request" or not message.get("more_body", False):
            self._body_done = True
        return message

    async def _time_out(self) -> None:
        self._timed_out = True
        timeout = self._guard.config.body_timeout_seconds
        self._guard.log.warning("closed connection from %s: body-timeout: request body "
                                "not complete within %g s", self._conn.key[0], timeout)
        if not self._started:
            body = json.dumps({"error": "body-timeout", "message": "request body not "
                               f"complete within {timeout:g} s"}).encode()
            await self._send({"type": "http.response.start", "status": 408,
                              "headers": [(b"content-type", b"application/json"),
                                          (b"connection", b"close")]})
            await self._send({"type": "http.response.body", "body": body})
        if self._conn.transport is not None:
            self._conn.transport.close()

    async def send(self, message: Message) -> None:
        if self._timed_out:
            return  # the answer was 408; the application's own is dropped
        if message.get("type") == "http.response.start":
            self._started = True
            if not self._body_done:
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"connection", b"close")]}
        await self._send(message)


def _has_body(scope: Scope) -> bool:
    """Whether an HTTP request announces a body (a non-zero length, or chunked)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.strip() not in (b"0", b""):
            return True
        if name == b"transfer-encoding":
            return True
    return False
