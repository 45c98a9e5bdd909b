"""Every number from outside is bounded to what the store holds, on a real node over a
real socket, on SQLite and PostgreSQL: the largest allowed value is taken (or answered
as a missing object), one past it, a negative and a non-number are answered 422
``invalid-request`` naming the field, and nothing answers 5xx.

The cases come from the operator API's own OpenAPI document, so a new route's integer
is covered (and must declare its bounds) without touching this file; a body integer
needs a valid body to sit in (``BODIES``), and a new one fails here until it has one.
The console's paths and forms and the federation endpoint are covered below.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.calls import apply_scenario
from tests.nodes import NodeProcess, nodes_on, wait_until

INT64_MAX = 2**63 - 1
OPERATOR, ROLE, PASSWORD = "nmcc-1", "nmcc-do", "correct horse battery staple"
CALL_ID = "0" * 32
#: a valid body for each operation that takes integers in its body (the integer is
#: then replaced by each boundary value)
BODIES: dict[str, dict[str, Any]] = {
    "POST /api/v1/roster": {"operator": OPERATOR, "role": ROLE, "status": "on-duty"},
    # a certificate of a key the node never had: answered as a missing object (404)
    "POST /api/v1/keys/revoke": {"cert": {"v": 1, "type": "key-revocation", "party": "US-JS",
                                          "kid": "0" * 16, "made_at": 0, "sig": "AA"}},
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with nodes_on(str(request.param), tmp_path_factory.mktemp("bounds")) as make:
        node = make("US-JS")
        apply_scenario(node)
        yield node.start()


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _schema(document, document["components"]["schemas"][
            schema["$ref"].rsplit("/", 1)[1]])
    return schema


def _integer(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
    """The integer schema within ``schema`` (itself, or one branch of an ``anyOf``)."""
    schema = _schema(document, schema)
    for branch in [schema, *schema.get("anyOf", [])]:
        if branch.get("type") == "integer":
            return branch
    return None


def _integers(document: dict[str, Any]) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(method, path, where, name, integer schema) of every integer the API takes."""
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for p in operation.get("parameters", []):
                schema = _integer(document, p["schema"])
                if schema is not None:
                    found.append((method.upper(), path, p["in"], p["name"], schema))
            body = operation.get("requestBody", {}).get("content", {}).get(
                "application/json", {}).get("schema")
            if body is not None:
                for name, prop in _schema(document, body).get("properties", {}).items():
                    schema = _integer(document, prop)
                    if schema is not None:
                        found.append((method.upper(), path, "body", name, schema))
    return found


@pytest.fixture(scope="module")
def integers(node: NodeProcess) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """Every integer of the operator API's document, as this node serves it."""
    document = httpx.get(node.url + "/api/v1/openapi.json", timeout=10).json()
    return _integers(document)


def test_every_integer_the_api_takes_is_bounded_to_the_store(
        integers: list[tuple[str, str, str, str, dict[str, Any]]]) -> None:
    assert {(m, p, w, n) for m, p, w, n, _ in integers} >= {
        ("GET", "/api/v1/inbox", "query", "after"), ("GET", "/api/v1/inbox", "query", "limit"),
        ("GET", "/api/v1/events", "header", "last-event-id"),
        ("GET", "/api/v1/calls-events", "query", "after"),
        ("POST", "/api/v1/roster", "body", "from_ms")}
    for method, path, where, name, schema in integers:
        assert "minimum" in schema, (method, path, where, name)
        assert "maximum" in schema, (method, path, where, name)
        assert -(2**63) <= schema["minimum"] <= schema["maximum"] <= INT64_MAX
        if where == "body":
            assert f"{method} {path}" in BODIES, f"give {method} {path} a valid body"


def _send(node: NodeProcess, method: str, path: str, where: str, name: str,
          value: object) -> httpx.Response:
    """One request with ``value`` in the named place; a stream is closed at its status."""
    headers: dict[str, Any] = {"authorization": f"Bearer {node.token}"}
    params: dict[str, Any] = {}
    body: dict[str, Any] | None = None
    if where == "query":
        params[name] = str(value)
    elif where == "header":
        headers[name] = str(value).encode()  # "²" goes as UTF-8 bytes
    elif where == "body":
        body = {**BODIES[f"{method} {path}"], name: value}
    url = node.url + path.replace("{call_id}", CALL_ID).replace("{conv_id}", CALL_ID) \
        .replace("{message_id}", CALL_ID).replace("{role}", ROLE)
    with httpx.stream(method, url, params=params, headers=headers, json=body,
                      timeout=10) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
        return response


def _refused_on_meaning(response: httpx.Response) -> bool:
    """A value within its bounds that contradicts another field (a schedule's end before
    its start, by default now): a 400 naming the time range, not a 422 or a 500."""
    return response.status_code == 400 and \
        response.json()["error"] in ("bad-override", "bad-range")


def test_integer_boundaries(node: NodeProcess,
                            integers: list[tuple[str, str, str, str, dict[str, Any]]]
                            ) -> None:
    """For every integer: its bounds are taken, one past them and non-numbers are a 422
    naming the field (one test walking the route table: a new route is in it)."""
    for method, path, where, name, schema in integers:
        _boundaries(node, method, path, where, name, int(schema["minimum"]),
                    int(schema["maximum"]))


def _boundaries(node: NodeProcess, method: str, path: str, where: str, name: str,
                low: int, high: int) -> None:
    case = f"{method} {path} {where}.{name}"
    for taken in (low, high):
        response = _send(node, method, path, where, name, taken)
        assert response.status_code in (200, 201, 204, 404) or \
            _refused_on_meaning(response), (case, taken, response.text)
    field = f"{where}.{name}"
    for refused in (high + 1, low - 1, -1 if low >= 0 else None, "twelve", "1.5", "²"):
        if refused is None:
            continue
        response = _send(node, method, path, where, name, refused)
        assert response.status_code == 422, (case, refused, response.text)
        body = response.json()
        assert body["error"] == "invalid-request", case
        assert body["field"] == field, case
        assert body["message"].startswith(field + ":"), case


def test_the_reported_overflow_is_a_422(node: NodeProcess) -> None:
    """The issue's reproduction: this answered 500 (OverflowError on SQLite). Refused
    with one security-log line."""
    logged = len(node.log_lines("refused input from"))
    r = node.api("GET", "/api/v1/inbox?after=9223372036854775808")
    assert r.status_code == 422
    wait_until(lambda: len(node.log_lines("refused input from")) == logged + 1,
               what="the refusal's security-log line")
    assert "query.after" in node.log_lines("refused input from")[-1]
    assert r.json() == {"error": "invalid-request", "field": "query.after", "message":
                        "query.after: must be at most 9223372036854775807"}
    r = node.api("GET", "/api/v1/inbox?after=9223372036854775807")
    assert r.status_code == 200
    assert r.json() == {"messages": [], "next_cursor": INT64_MAX}


def test_an_unreadable_body_is_a_422_naming_the_body(node: NodeProcess) -> None:
    r = node.api("POST", "/api/v1/messages", content=b"\xff\xfe{",
                 headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["field"] == "body"
    r = node.api("POST", "/api/v1/alarms/clear", json={"cause": "x\u0000y"})
    assert r.status_code == 422
    assert r.json()["field"] == "body.cause"


# -- the console ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def console(node: NodeProcess) -> Iterator[tuple[httpx.Client, str]]:
    """A console client logged in as ``OPERATOR`` (once: a TOTP code is taken once),
    and its session's CSRF token."""
    from hotline.accounts.offline import add_operator
    from hotline.accounts.totp import code_at

    secret = add_operator(node.dir, OPERATOR, PASSWORD).secret
    with httpx.Client(base_url=node.url) as client:
        page = client.get("/login?lang=en")
        login = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert login
        client.headers["Cookie"] = f"__Host-hotline-login={login.group(1)}"
        r = client.post("/login", data={"csrf": login.group(1), "operator": OPERATOR,
                                        "password": PASSWORD,
                                        "code": code_at(secret, time.time())})
        assert r.status_code == 303, r.text
        session = re.search(r"__Host-hotline-session=([^;]+)", r.headers["set-cookie"])
        assert session
        client.headers["Cookie"] = f"__Host-hotline-session={session.group(1)}"
        board = re.search(r'name="csrf" value="([^"]+)"', client.get("/board").text)
        assert board
        yield client, board.group(1)


@pytest.mark.parametrize(("method", "path", "field"), [
    ("GET", "/conversations/%00", "path.conv_id"),
    ("GET", "/conversations/" + "f" * 33, "path.conv_id"),
    ("GET", "/conversations/" + "F" * 32 + "/messages", "path.conv_id"),
    ("POST", "/alarm/x'%20OR%201=1/answer", "path.call_id"),
    ("POST", "/board/calls/-1/cancel", "path.call_id"),
    ("POST", "/receipts/9223372036854775808", "path.message_id"),
])
def test_console_paths_take_only_ids(node: NodeProcess, console: tuple[httpx.Client, str],
                                     method: str, path: str, field: str) -> None:
    client, csrf = console
    logged = len(node.log_lines("refused input from"))
    r = client.request(method, path, data={"csrf": csrf, "as": ROLE}
                       if method == "POST" else None)
    assert r.status_code == 422, r.text
    assert field in r.text
    wait_until(lambda: len(node.log_lines("refused input from")) == logged + 1,
               what="the refusal's security-log line")
    r = client.get("/conversations/" + CALL_ID)  # well formed, unknown: 404
    assert r.status_code == 404


def test_console_forms_refuse_nul_and_foreign_ids(node: NodeProcess,
                                                 console: tuple[httpx.Client, str]) -> None:
    client, csrf = console
    r = client.post("/board/call", data={"csrf": csrf, "as": ROLE, "to": "cgs@RU-GS",
                                         "reason": "a\u0000b"})
    assert r.status_code == 422
    assert "form.reason" in r.text
    r = client.post(f"/receipts/{CALL_ID}", data={
        "csrf": csrf, "as": ROLE, "receipt": "read", "conversation": "%00" * 8})
    assert r.status_code == 422
    assert "form.conversation" in r.text
    assert node.api("GET", "/api/v1/calls").json()["calls"] == []
    with httpx.Client(base_url=node.url) as client:  # the log-in form too
        page = client.get("/login?lang=en")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        client.headers["Cookie"] = f"__Host-hotline-login={token.group(1)}"
        r = client.post("/login", data={"csrf": token.group(1), "operator": "a\u0000",
                                        "password": "x", "code": "1"})
        assert r.status_code == 422


# -- the federation API -----------------------------------------------------------------
@pytest.mark.parametrize(("line", "names"), [
    (b'{"ct":"","from":"AA-ONE","id":"' + b"a" * 32 + b'","kid":"' + b"b" * 16
     + b'","seq":9007199254740992,"sig":"","to":"US-JS","ts":1,"type":"message","v":1}',
     "safe range"),
    (b'{"ct":"","from":"AA-ONE","id":"' + b"a" * 32 + b'","kid":"' + b"b" * 16
     + b'","seq":0,"sig":"","to":"US-JS","ts":1,"type":"message","v":1}', "'seq'"),
    (b'{"ct":"","from":"AA-ONE","id":"' + b"a" * 32 + b'","kid":"' + b"b" * 16
     + b'","seq":1,"sig":"","to":"US-JS","ts":-1,"type":"message","v":1}', "'ts'"),
])
def test_federation_envelope_numbers_are_bounded(node: NodeProcess, line: bytes,
                                                 names: str) -> None:
    r = httpx.post(node.url + "/federation/v1/envelopes", content=line, timeout=10)
    assert r.status_code == 400
    result = r.json()["results"][0]
    assert result["error"] == "malformed-envelope"
    assert names in result["message"]


@pytest.mark.parametrize("body", [
    b'{"checkpoint":{"origin":"AA-ONE"},"from_size":9007199254740992,"proof":[]}',
    b'{"checkpoint":{"origin":"AA-ONE"},"from_size":-1,"proof":[]}',
    b'{"checkpoint":{"origin":"AA-ONE"},"from_size":1' + b"0" * 400 + b',"proof":[]}',
])
def test_federation_checkpoint_numbers_are_bounded(node: NodeProcess, body: bytes) -> None:
    r = httpx.post(node.url + "/federation/v1/checkpoints", content=body, timeout=10)
    assert r.status_code in (400, 403), r.text  # malformed, or from no linked party
    assert r.json()["error"] in ("malformed-envelope", "bad-checkpoint", "unknown-sender")
