"""Every refusal of a malformed field speaks the user's terms: on a real node, every
route of the operator API's own OpenAPI document gets bad values in each of its path
and query parameters and body fields (the wrong form, the wrong type, too long, missing,
a field it does not take). Each answer is a 422 ``invalid-request`` naming the field,
and no validator wording ("String should match pattern", "Value error", ...) reaches
the user. A new route is covered without touching this file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.calls import apply_scenario
from tests.nodes import NodeProcess, nodes_on

#: what the validator says, never the node
VALIDATOR_WORDS = ("should match", "String should", "Input should", "Value error",
                   "pattern", "Field required", "Extra inputs", "should have",
                   "validation error", "^[", "type=")
GOOD = {"call_id": "0" * 32, "conv_id": "0" * 32, "message_id": "0" * 32,
        "notice_id": "0" * 32, "incident_id": "0" * 32,
        "role": "nmcc-do", "party": "RU-GS"}
BAD_VALUES: list[object] = ["NOT valid!", "", 12345, "x" * 70_000, None, ["a"], {"a": 1}]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with nodes_on("sqlite", tmp_path_factory.mktemp("words")) as make:
        node = make("US-JS")
        apply_scenario(node)
        yield node.start()


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _schema(document, document["components"]["schemas"][
            schema["$ref"].rsplit("/", 1)[1]])
    return schema


def _cases(document: dict[str, Any]) -> Iterator[tuple[str, str, str, str, object]]:
    """(method, path, where, name, bad value) for every parameter and body field."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for p in operation.get("parameters", []):
                if p["in"] in ("path", "query"):
                    for value in ("NOT valid!", "x" * 300):
                        yield method.upper(), path, p["in"], p["name"], value
            body = operation.get("requestBody", {}).get("content", {}).get(
                "application/json", {}).get("schema")
            if body is None:
                continue
            yield method.upper(), path, "body", "", None  # nothing at all
            yield method.upper(), path, "body", "no_such_field", "x"
            for name in _schema(document, body).get("properties", {}):
                for value in BAD_VALUES:
                    yield method.upper(), path, "body", name, value


def _send(node: NodeProcess, method: str, path: str, where: str, name: str,
          value: object) -> httpx.Response:
    url_path = path
    for param, good in GOOD.items():
        bad = str(value) if where == "path" and name == param else good
        url_path = url_path.replace("{" + param + "}", quote(bad, safe=""))
    params = {name: str(value)} if where == "query" else {}
    body: Any = None
    if where == "body":
        body = {} if not name else {name: value}
    headers = {"authorization": f"Bearer {node.token}"}
    with httpx.stream(method, node.url + url_path, params=params, headers=headers,
                      json=body, timeout=10) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
        return response


def test_every_refusal_of_a_field_names_it_in_the_users_terms(node: NodeProcess) -> None:
    document = httpx.get(node.url + "/api/v1/openapi.json", timeout=10).json()
    cases = list(_cases(document))
    refused = 0
    vague: set[str] = set()
    for method, path, where, name, value in cases:
        case = f"{method} {path} {where}.{name}={str(value)[:20]!r}"
        response = _send(node, method, path, where, name, value)
        assert response.status_code < 500, (case, response.text)
        if response.status_code != 422:
            continue
        refused += 1
        answer = response.json()
        assert answer["error"] == "invalid-request", case
        assert answer["message"].startswith(answer["field"] + ": "), (case, answer)
        assert answer["field"].startswith(where), (case, answer)
        for words in VALIDATOR_WORDS:
            assert words not in answer["message"], (case, answer)
        # a value of the wrong form is told what the field takes
        vague.update({case} if "in the form this field takes" in answer["message"] else ())
    assert not vague, sorted(vague)
    # the malformed ids of the call routes, at least, were refused: the test saw them
    assert refused > len(cases) // 2, (refused, len(cases))


@pytest.mark.parametrize(("path", "field", "says"), [
    ("/api/v1/calls/xyz", "path.call_id", "'xyz' is not a call id (32 characters"),
    ("/api/v1/conversations/ABC", "path.conv_id", "'ABC' is not a conversation id"),
    ("/api/v1/schedules/Bad%20Role", "path.role", "'Bad Role' is not a role id"),
    ("/api/v1/inbox?kind=robots", "query.kind", "'robots' is not one of 'all' or 'people'"),
    ("/api/v1/inbox?limit=0", "query.limit", "must be at least 1"),
])
def test_a_malformed_field_is_named_with_what_it_must_be(node: NodeProcess, path: str,
                                                        field: str, says: str) -> None:
    response = node.api("GET", path)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert response.json()["message"].startswith(f"{field}: {says}"), response.json()


def test_a_body_field_of_the_wrong_form_is_named(node: NodeProcess) -> None:
    response = node.api("POST", "/api/v1/calls", json={"to": "cgs@RU-GS", "as": "NMCC DO"})
    assert response.status_code == 422
    assert response.json() == {"error": "invalid-request", "field": "body.as", "message":
                               "body.as: 'NMCC DO' is not a role id (a lowercase letter, "
                               "then up to 31 of a-z, 0-9 and '-', e.g. nmcc-do)"}
    response = node.api("POST", "/api/v1/messages", json={"to": "RU-GS"})
    assert response.status_code == 422
    assert response.json()["message"] == "body: give exactly one of 'text' or 'texts'"
