"""Whoever answers at a peer's endpoint (an impostor, a broken proxy) cannot make the
node buffer an answer of any size: every client of the federation reads a bounded body
and gives up past it, on real sockets against a server that answers with megabytes."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from hotline.delivery.transport import (
    ANSWER_BASE_BYTES,
    ANSWER_BYTES_PER_ENVELOPE,
    HttpTransport,
    TransportError,
)
from hotline.log.checkpointer import post_checkpoint

FLOOD_BYTES = 16 * 1024 * 1024


class _Flood(http.server.BaseHTTPRequestHandler):
    """Answers every request with 200 and 16 MiB of spaces."""

    def _flood(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        with contextlib.suppress(OSError):  # the client hangs up once it has enough
            for _ in range(FLOOD_BYTES // 65536):
                self.wfile.write(b" " * 65536)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._flood()

    def do_GET(self) -> None:
        self._flood()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flood() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_batch_answer_past_its_bound_is_a_transport_error(flood: str) -> None:
    transport = HttpTransport(timeout=30.0)
    limit = ANSWER_BASE_BYTES + ANSWER_BYTES_PER_ENVELOPE * 2
    try:
        with pytest.raises(TransportError, match=f"exceeds {limit} bytes"):
            await transport.post_batch(flood, [b"{}", b"{}"], "bulk")
        with pytest.raises(TransportError, match=f"exceeds {ANSWER_BASE_BYTES} bytes"):
            await transport.get_protocol(flood)
    finally:
        await transport.close()


async def test_a_checkpoint_answer_past_its_bound_is_refused(flood: str) -> None:
    async with httpx.AsyncClient(timeout=30.0) as client:
        with pytest.raises(ValueError, match=f"exceeds {ANSWER_BASE_BYTES} bytes"):
            await post_checkpoint(client, flood + "/federation/v1/checkpoints", b"{}")
