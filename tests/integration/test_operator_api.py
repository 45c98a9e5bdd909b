"""The operator API: never open, validates input, streams incoming messages live."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.nodes import NodeProcess, link, nodes_on, wait_until

MakeNode = Callable[[str], NodeProcess]

ROUTES = [("GET", "/api/v1/status"), ("GET", "/api/v1/inbox"), ("GET", "/api/v1/events"),
          ("POST", "/api/v1/messages")]


def _pair(make: MakeNode) -> tuple[NodeProcess, NodeProcess]:
    a, b = make("AA-ONE"), make("BB-TWO")
    link(a, b)
    return a.start(), b.start()


@pytest.mark.parametrize("token", [None, "", "Bearer wrong", "Basic abc", "Bearer"])
def test_every_route_needs_the_operator_token(linked_a: NodeProcess, token: str | None) -> None:
    a = linked_a
    headers = {} if token is None else {"authorization": token}
    for method, path in ROUTES:
        response = httpx.request(method, a.url + path, headers=headers, timeout=10,
                                 json={"to": "BB-TWO", "text": "x"} if method == "POST" else None)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"] == "unauthorized"
    assert a.query("SELECT COUNT(*) AS n FROM outbox")[0].n == 0


@pytest.fixture(scope="module")
def linked_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A running node linked to a peer that is not running (validation needs no delivery)."""
    with nodes_on("sqlite", tmp_path_factory.mktemp("api")) as make:
        a, b = make("AA-ONE"), make("BB-TWO")
        link(a, b)
        yield a.start()


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"to": "BB-TWO", "text": "a", "texts": ["b"]}, 422, "invalid-request"),
    ({"to": "BB-TWO"}, 422, "invalid-request"),
    ({"to": "BB-TWO", "text": "x", "extra": 1}, 422, "invalid-request"),
    ({"to": "BB-TWO", "text": "   "}, 400, "empty-message"),
    ({"to": "BB-TWO", "text": "nul \u0000 inside"}, 400, "bad-text"),
    ({"to": "BB-TWO", "text": "x" * 65_537}, 400, "message-too-long"),
    ({"to": "BB-TWO", "texts": []}, 400, "empty-message"),
    ({"to": "BB-TWO", "texts": ["ok", ""]}, 400, "empty-message"),
    ({"to": "BB-TWO", "texts": ["m"] * 10_001}, 400, "too-many-messages"),
    ({"to": "ZZ-NONE", "text": "x"}, 404, "no-link"),
    ({"to": "BB-TWO' OR 1=1 --", "text": "x"}, 404, "no-link"),
])
def test_bad_send_requests_are_refused_and_change_nothing(linked_a: NodeProcess,
                                                          body: dict[str, Any], status: int,
                                                          error: str) -> None:
    a = linked_a
    before = len(a.log_lines("hotline.security:"))
    response = a.api("POST", "/api/v1/messages", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["message"]
    assert a.query("SELECT COUNT(*) AS n FROM outbox")[0].n == 0
    assert a.query("SELECT send_seq FROM links")[0].send_seq == 0
    lines = wait_until(lambda: a.log_lines("hotline.security:")[before:] or None, 10,
                       what="the refusal's security-log line")
    assert len(lines) == 1, lines  # every refusal: one line, the request's answer later


# Refusals decided by the routes and services (not by the request's shape): each one
# leaves exactly one security-log line too, and changes nothing.
API_REFUSALS: list[tuple[str, str, dict[str, Any] | None, dict[str, str], int]] = [
    ("POST", "/api/v1/roster", {"operator": "nobody", "role": "cgs", "status": "on-duty"}, {},
     400),
    ("PUT", "/api/v1/directory", {"toml": ""}, {"if-match": "W/\"1\""}, 422),
    ("POST", "/api/v1/alarms/clear", {"cause": "no-such-alarm", "operator": "x"}, {}, 404),
    ("GET", "/api/v1/calls/" + "0" * 32, None, {}, 404),
    ("POST", "/api/v1/calls", {"to": "cgs@ZZ-NONE", "as": "nmcc"}, {}, 404),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), API_REFUSALS)
def test_every_api_refusal_leaves_one_security_line(
        linked_a: NodeProcess, method: str, path: str, body: dict[str, Any] | None,
        headers: dict[str, str], status: int) -> None:
    a = linked_a
    versions = a.query("SELECT COUNT(*) AS n FROM directory_versions")[0].n
    before = len(a.log_lines("hotline.security:"))
    response = a.api(method, path, json=body, headers=headers)
    assert response.status_code == status, response.text
    lines = wait_until(lambda: a.log_lines("hotline.security:")[before:] or None, 10,
                       what="the refusal's security-log line")
    assert len(lines) == 1, lines
    assert a.query("SELECT COUNT(*) AS n FROM directory_versions")[0].n == versions


def test_malformed_json_body_is_refused(linked_a: NodeProcess) -> None:
    a = linked_a
    response = a.api("POST", "/api/v1/messages", content=b"{not json",
                     headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid-request"


def test_openapi_document_describes_the_operator_routes(linked_a: NodeProcess) -> None:
    a = linked_a
    spec = httpx.get(a.url + "/api/v1/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/messages", "/api/v1/inbox", "/api/v1/events", "/api/v1/status"} \
        <= set(spec["paths"])
    assert not any(path.startswith("/federation") for path in spec["paths"])


class EventReader:
    """Reads the SSE stream in a thread and collects ``message`` events."""

    def __init__(self, node: NodeProcess, headers: dict[str, str] | None = None,
                 path: str = "/api/v1/events", event_name: str = "message") -> None:
        self.events: list[dict[str, Any]] = []
        self._path = path
        self._event_name = event_name
        self.error: Exception | None = None
        self.ids: list[str] = []
        self.connected = threading.Event()
        self._node = node
        self._headers = headers or {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError as exc:
            if not self._stop.is_set():  # the node going away after close() is expected
                self.error = exc

    def _read(self) -> None:
        headers = {"authorization": f"Bearer {self._node.token}", **self._headers}
        with httpx.stream("GET", self._node.url + self._path, headers=headers,
                          timeout=httpx.Timeout(5.0, read=60.0)) as response:
            assert response.status_code == 200
            event = ""
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("id:"):
                    self.ids.append(line.split(":", 1)[1].strip())
                elif line.startswith("data:") and event == self._event_name:
                    self.events.append(json.loads(line.split(":", 1)[1]))
                if self._stop.is_set():
                    return

    def close(self) -> None:
        self._stop.set()


def test_event_stream_shows_incoming_messages_live_and_resumes(make_node: MakeNode) -> None:
    a, b = _pair(make_node)
    reader = EventReader(b)
    assert reader.connected.wait(10)
    a.send(b.party, ["first live", "second live"])
    wait_until(lambda: len(reader.events) >= 2, 30, what="two live events")
    reader.close()
    assert reader.error is None
    assert [(e["from"], e["seq"], e["text"]) for e in reader.events[:2]] == [
        ("AA-ONE", 1, "first live"), ("AA-ONE", 2, "second live")]
    a.send(b.party, ["third, while nobody listened"])
    wait_until(lambda: len(b.inbox()) == 3, 30, what="third message stored")
    resumed = EventReader(b, {"last-event-id": reader.ids[1]})
    wait_until(lambda: resumed.events, 30, what="catch-up event")
    resumed.close()
    assert [e["text"] for e in resumed.events] == ["third, while nobody listened"]


def test_a_repeated_request_with_an_idempotency_key_sends_nothing_twice(
        make_sqlite_node: MakeNode) -> None:
    a, b = make_sqlite_node("AA-ONE"), make_sqlite_node("BB-TWO")
    link(a, b)
    a.start()
    body = {"to": "BB-TWO", "texts": ["one", "two"]}
    key = {"idempotency-key": "op-7f3a-0001"}
    first = a.api("POST", "/api/v1/messages", json=body, headers=key)
    again = a.api("POST", "/api/v1/messages", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert a.query("SELECT COUNT(*) AS n FROM outbox")[0].n == 2
    other = a.api("POST", "/api/v1/messages", json={"to": "BB-TWO", "text": "three"},
                  headers=key)
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency-key-reused"
    bad = a.api("POST", "/api/v1/messages", json=body, headers={"idempotency-key": "x" * 101})
    assert bad.status_code == 400
    assert bad.json()["error"] == "bad-idempotency-key"
    assert a.query("SELECT COUNT(*) AS n FROM outbox")[0].n == 2
    fresh = a.api("POST", "/api/v1/messages", json=body, headers={"idempotency-key": "k2"})
    assert [m["seq"] for m in fresh.json()["messages"]] == [3, 4]
