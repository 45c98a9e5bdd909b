"""Second breaker, nothing silent (issue 11): the answers the framework gives by itself
(no such route, a method the route does not take) are refusals, and leave exactly one
``hotline.security`` line each, on the operator API, the federation API and the console
alike."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.nodes import NodeProcess, wait_until

Make = Callable[..., NodeProcess]

TRIES = [("GET", "/api/v1/no-such-thing", 404), ("DELETE", "/api/v1/inbox", 405),
         ("GET", "/federation/v1/no-such-thing", 404),
         ("GET", "/federation/v1/checkpoints", 405), ("GET", "/no-such-page", 404)]


def test_a_route_or_method_that_does_not_exist_is_one_security_line(
        make_sqlite_node: Make) -> None:
    ru = make_sqlite_node("RU-GS")
    ru.start()
    for method, path, status in TRIES:
        before = len(ru.log_lines("hotline.security"))
        headers = {"authorization": f"Bearer {ru.token}"} if path.startswith("/api") else {}
        answer = httpx.request(method, ru.url + path, headers=headers, timeout=10)
        assert answer.status_code == status, (path, answer.text)
        wait_until(lambda b=before: len(ru.log_lines("hotline.security")) > b, 10,
                   what=f"a line for {method} {path}")
        lines = ru.log_lines("hotline.security")[before:]
        assert len(lines) == 1, lines
        assert path in lines[0]


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing"])
def test_the_same_without_a_token(make_sqlite_node: Make, path: str) -> None:
    ru = make_sqlite_node("RU-GS")
    ru.start()
    before = len(ru.log_lines("hotline.security"))
    assert httpx.get(ru.url + path, timeout=10).status_code in (401, 404)
    wait_until(lambda: len(ru.log_lines("hotline.security")) > before, 10, what="a line")
    assert len(ru.log_lines("hotline.security")) == before + 1
