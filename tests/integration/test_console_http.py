"""The console's HTTP boundary on a real node, without a browser: redirects to log in,
the browser defences on every console response, forms refused before any handler runs,
and failed log-ins throttled per address."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.calls import apply_scenario
from tests.nodes import NodeProcess

Make = Callable[..., NodeProcess]


@pytest.fixture
def node(make_node: Make) -> NodeProcess:
    """A node on SQLite and on PostgreSQL (sessions and accounts live in the database)."""
    node = make_node("US-JS")
    apply_scenario(node)
    return node.start()


def _login_form(client: httpx.Client) -> str:
    page = client.get("/login?lang=en")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    # a client's cookie jar keeps Secure cookies for https only; browsers also for loopback
    assert f"__Host-hotline-login={match.group(1)};" in page.headers["set-cookie"]
    client.headers["Cookie"] = f"__Host-hotline-login={match.group(1)}"
    return match.group(1)


def test_pages_need_a_session(node: NodeProcess) -> None:
    with httpx.Client(base_url=node.url) as client:
        r = client.get("/board")
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=/board"
        r = client.get("/alarm", headers={"HX-Request": "true"})
        assert r.status_code == 401
        assert r.headers["hx-redirect"].startswith("/login")
        r = client.post("/board/call", data={"to": "cgs@RU-GS", "as": "nmcc-do"})
        assert r.status_code == 303  # to the log-in page; nothing placed
    assert node.api("GET", "/api/v1/calls").json()["calls"] == []


def test_console_responses_carry_the_browser_defences(node: NodeProcess) -> None:
    with httpx.Client(base_url=node.url) as client:
        for path in ("/login", "/static/console.css", "/static/console.js"):
            headers = client.get(path).headers
            assert headers["content-security-policy"].startswith("default-src 'none'")
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
        cookie = client.get("/login").headers["set-cookie"]
        for attribute in ("__Host-hotline-login=", "HttpOnly", "Secure", "SameSite=strict",
                          "Path=/"):
            assert attribute.lower() in cookie.lower()
        # the JSON API is not a page: no console headers there
        assert "content-security-policy" not in client.get("/api/v1/status").headers


def test_bad_forms_are_refused_before_any_handler(node: NodeProcess) -> None:
    with httpx.Client(base_url=node.url) as client:
        token = _login_form(client)
        r = client.post("/login", json={"operator": "x"})
        assert r.status_code == 415
        r = client.post("/login", content=f"csrf={token}&csrf={token}".encode(),
                        headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 400
        assert "given twice" not in r.text  # the page says the form could not be read
        r = client.post("/login", data={"csrf": "wrong", "operator": "nmcc-1",
                                        "password": "x" * 12, "code": "123456"})
        assert r.status_code == 403
        assert "The login form had expired" in r.text
        r = client.post("/login", data={"csrf": token, "operator": "nmcc-1"},
                        headers={"Origin": "http://evil.example"})
        assert r.status_code == 403


def test_failed_log_ins_are_throttled_per_address(node: NodeProcess) -> None:
    """Twenty failures from one address within a minute — unknown names, and attempts
    on an account already locked out — then the next attempt is refused at once, without
    reaching the accounts (no further log entry)."""
    from hotline.accounts.offline import add_operator

    add_operator(node.dir, "nmcc-1", "correct horse battery staple")
    with httpx.Client(base_url=node.url) as client:
        token = _login_form(client)
        statuses = []
        for i in range(20):
            operator = f"guess-{i}" if i % 2 else "nmcc-1"
            r = client.post("/login", data={"csrf": token, "operator": operator,
                                            "password": "not the password",
                                            "code": "123456"})
            statuses.append(r.status_code)
        assert statuses.count(429) == 5  # nmcc-1 locked after its 5th failure
        assert statuses.count(401) == 15
        logged = node.query("SELECT COUNT(*) FROM log_entries WHERE kind = 'login'")[0][0]
        r = client.post("/login", data={"csrf": token, "operator": "guess-x",
                                        "password": "not the password", "code": "123456"})
        assert r.status_code == 429
        assert "Too many failed attempts" in r.text
        assert node.query("SELECT COUNT(*) FROM log_entries WHERE kind = 'login'"
                          )[0][0] == logged


def test_log_in_use_and_log_out(node: NodeProcess) -> None:
    """The whole session life over HTTP: log in with password and code, a page, an
    action with the session's CSRF token, log out — and the cookie is dead after."""
    import time

    from hotline.accounts.offline import add_operator
    from hotline.accounts.totp import code_at

    secret = add_operator(node.dir, "nmcc-1", "correct horse battery staple").secret
    with httpx.Client(base_url=node.url) as client:
        token = _login_form(client)
        r = client.post("/login", data={"csrf": token, "operator": "nmcc-1",
                                        "password": "correct horse battery staple",
                                        "code": code_at(secret, time.time()),
                                        "next": "/links"})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/links"
        session = re.search(r"__Host-hotline-session=([^;]+)", r.headers["set-cookie"])
        assert session
        client.headers["Cookie"] = f"__Host-hotline-session={session.group(1)}"
        board = client.get("/board")
        assert board.status_code == 200
        assert "nmcc-do" in board.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', board.text)
        assert csrf
        r = client.post("/logout", data={"csrf": csrf.group(1)},
                        headers={"Origin": node.url})
        assert r.status_code == 303
        assert client.get("/board").status_code == 303  # back to the log-in page
    kinds = [row[0] for row in node.query(
        "SELECT kind FROM log_entries WHERE subject = 'nmcc-1' ORDER BY idx")]
    assert kinds == ["account", "login", "logout"]
