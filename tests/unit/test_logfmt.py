"""The JSON log format and the ids it carries; who counts as local for ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from hotline.api.metrics import is_local
from hotline.api.requestids import request_id, subject_ids
from hotline.logfmt.context import bind, bound, current
from hotline.logfmt.formats import TEXT_FORMAT, JsonFormatter, TextFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("hotline.calls", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_a_json_line_names_the_ids_bound_around_it_and_only_those() -> None:
    fmt = JsonFormatter()
    with bound(call_id="c1", request_id="r1"):
        line = json.loads(fmt.format(record("call c1: answered")))
        with bound(call_id="c2"):
            assert json.loads(fmt.format(record("x")))["call_id"] == "c2"
        assert current() == {"request_id": "r1", "call_id": "c1"}
    assert {"ts", "level", "logger", "message"} <= line.keys()
    assert (line["call_id"], line["request_id"], line["message"]) == ("c1", "r1",
                                                                       "call c1: answered")
    assert "envelope_id" not in line
    assert current() == {}
    assert "call_id" not in json.loads(fmt.format(record("after")))


def test_an_id_given_as_extra_counts_where_no_context_is_inherited() -> None:
    line = json.loads(JsonFormatter().format(record("m", envelope_id="e9")))
    assert line["envelope_id"] == "e9"


def test_an_unknown_id_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not a log context id"), bound(callid="x"):
        pass
    with pytest.raises(ValueError, match="not a log context id"):
        bind(call="x")


async def test_ids_bound_in_one_task_do_not_leak_into_another() -> None:
    async def one() -> dict[str, str]:
        bind(request_id="a")
        await asyncio.sleep(0)
        return current()

    async def other() -> dict[str, str]:
        await asyncio.sleep(0)
        return current()

    assert await asyncio.gather(one(), other()) == [{"request_id": "a"}, {}]


@given(st.text())
def test_every_message_is_one_line_of_json(message: str) -> None:
    line = JsonFormatter().format(record(message))
    assert len(line.splitlines()) == 1  # not even U+2028 or NEL, which splitlines breaks at
    assert json.loads(line)["message"] == message


@given(st.text())
def test_every_message_is_one_text_line_whatever_a_peer_put_in_it(message: str) -> None:
    """An error body a peer sent (``HTTP 500: ...\n2026-... CRITICAL ...``) must not
    forge a line of its own in the text log."""
    line = TextFormatter(TEXT_FORMAT).format(record("link to RU-GS: HTTP 500: " + message))
    assert len(line.splitlines()) == 1
    assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in line)


def test_the_text_line_shows_what_it_escaped() -> None:
    line = TextFormatter(TEXT_FORMAT).format(record("a\nb\x1b[31mc\u2028d"))
    assert line.endswith("a\\nb\\u001b[31mc\\u2028d")


def scope(client: str, headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/metrics",
                    "headers": headers or [], "client": (client, 50000)})


@pytest.mark.parametrize(("client", "headers", "local"), [
    ("127.0.0.1", [], True),
    ("::1", [], True),
    ("127.0.0.2", [], True),
    ("192.0.2.7", [], False),
    ("testclient", [], False),
    ("127.0.0.1", [(b"x-forwarded-for", b"127.0.0.1")], False),
    ("127.0.0.1", [(b"forwarded", b"for=127.0.0.1")], False),
    ("127.0.0.1", [(b"x-real-ip", b"127.0.0.1")], False),
    # a proxy that names no client address still marks itself
    ("127.0.0.1", [(b"via", b"1.1 proxy")], False),
    ("127.0.0.1", [(b"x-forwarded-proto", b"https")], False),
    ("127.0.0.1", [(b"x-forwarded-host", b"hotline.example")], False),
    ("::1", [(b"true-client-ip", b"::1")], False),
    ("127.0.0.1", [(b"cf-connecting-ip", b"127.0.0.1")], False),
])
def test_only_loopback_without_a_proxy_header_is_local(
        client: str, headers: list[tuple[bytes, bytes]], local: bool) -> None:
    assert is_local(scope(client, headers)) is local


def test_a_proxy_request_id_is_kept_only_when_sane() -> None:
    assert request_id({"headers": [(b"x-request-id", b"abc-123.x_y")]}) == "abc-123.x_y"
    for bad in (b"", b"a b", b"x" * 65, b"evil\nline"):
        rid = request_id({"headers": [(b"x-request-id", bad)]})
        assert rid != bad.decode()
        assert len(rid) == 16


def test_a_request_to_one_call_or_conversation_names_it() -> None:
    ident = "0123456789abcdef" * 2
    assert subject_ids(f"/api/v1/calls/{ident}/answer") == {"call_id": ident}
    assert subject_ids(f"/api/v1/calls/{ident}") == {"call_id": ident}
    assert subject_ids(f"/conversations/{ident}") == {"conversation_id": ident}
    assert subject_ids("/api/v1/calls") == {}
    assert subject_ids(f"/api/v1/calls/{ident}x") == {}
