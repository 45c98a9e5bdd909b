"""Bytes the HTTP parser refuses (a control character in a header — a hostile
``X-Request-Id`` —, a request line that is not one) are answered 400 by it before any
application sees a request: a refusal like any other, so one ``hotline.security`` line
each; well-formed requests, ``Connection: close`` ones included, leave none."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx

from tests.nodes import NodeProcess, wait_until

Make = Callable[..., NodeProcess]


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_request_the_parser_refuses_leaves_one_security_line(make_sqlite_node: Make) -> None:
    node = make_sqlite_node("US-JS")
    node.start()
    hostile = [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\x01\r\n\r\n",
               b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\nb: c\r\n\r\n",
               b"GARBAGE\r\n\r\n"]
    for n, data in enumerate(hostile, start=1):
        assert _raw(node.port, data).startswith(b"HTTP/1.1 400"), data
        wait_until(lambda n=n: len(node.log_lines("malformed-request")) == n,  # type: ignore[misc]
                   10, what="one security-log line per refusal")
        assert "hotline.security" in node.log_lines("malformed-request")[-1]
    ok = _raw(node.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200"), ok[:80]
    assert httpx.get(node.url + "/healthz", timeout=10).status_code == 200
    assert len(node.log_lines("malformed-request")) == len(hostile)
