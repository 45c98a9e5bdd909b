"""The console's HTTP boundary on a real node, without a browser: redirects to log in,
the browser defences on every console response, forms refused before any handler runs,
and failed log-ins throttled per address."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from tests.calls import apply_scenario
from tests.nodes import NodeProcess, wait_until

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
    """Each refusal also leaves exactly one security-log line."""
    def refused_once(before: int) -> int:
        lines = wait_until(lambda: node.log_lines("hotline.security:")[before:] or None, 10,
                           what="the refusal's security-log line")
        assert len(lines) == 1, lines
        return before + 1

    seen = len(node.log_lines("hotline.security:"))
    with httpx.Client(base_url=node.url) as client:
        token = _login_form(client)
        r = client.post("/login", json={"operator": "x"})
        assert r.status_code == 415
        seen = refused_once(seen)
        r = client.post("/login", content=f"csrf={token}&csrf={token}".encode(),
                        headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 400
        assert "given twice" not in r.text  # the page says the form could not be read
        seen = refused_once(seen)
        r = client.post("/login", data={"csrf": "wrong", "operator": "nmcc-1",
                                        "password": "x" * 12, "code": "123456"})
        assert r.status_code == 403
        assert "The login form had expired" in r.text
        seen = refused_once(seen)
        r = client.post("/login", data={"csrf": token, "operator": "nmcc-1"},
                        headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        refused_once(seen)


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


PASSWORD = "correct horse battery staple"
TIMES = "\N{MULTIPLICATION SIGN}"


def _log_in(client: httpx.Client, secret: str, operator: str = "nmcc-1") -> None:
    """Log in with password and code; the client then carries the session cookie (set by
    hand: a client's cookie jar keeps Secure cookies for https only)."""
    import time

    from hotline.accounts.totp import code_at

    token = _login_form(client)
    r = client.post("/login", data={"csrf": token, "operator": operator,
                                    "password": PASSWORD,
                                    "code": code_at(secret, time.time())})
    assert r.status_code == 303, r.text
    session = re.search(r"__Host-hotline-session=([^;]+)", r.headers["set-cookie"])
    assert session
    client.headers["Cookie"] = f"__Host-hotline-session={session.group(1)}"


def _banner(client: httpx.Client) -> str:
    r = client.get("/console/banner", headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    return r.text


def test_the_event_stream_announces_an_alarm_and_the_banner_shows_it(
        make_node: Make) -> None:
    """A real cause on a real node: a linked peer (never started; the test holds its
    keys) presents two different checkpoints of one size. The witness refuses the second
    and raises ``log-equivocation``; the console's event stream names it ``alarm`` at
    once, and the banner fragment every page fetches then shows it."""
    from hotline.accounts.offline import add_operator
    from hotline.log.merkle import leaf_hash
    from hotline.protocol import canonical
    from hotline.protocol.checkpoint import make_checkpoint
    from tests.nodes import link

    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    apply_scenario(us)
    secret = add_operator(us.dir, "nmcc-1", PASSWORD).secret
    us.start()
    keys = ru.private_keys()

    def present(root: bytes) -> httpx.Response:
        checkpoint = make_checkpoint("RU-GS", 3, root, 1, keys)
        return httpx.post(us.url + "/federation/v1/checkpoints", timeout=10,
                          content=canonical.encode({"checkpoint": checkpoint,
                                                    "from_size": 0, "proof": []}))

    with httpx.Client(base_url=us.url, timeout=10) as client:
        _log_in(client, secret)
        board = client.get("/board").text
        assert '<div id="banner-slot" role="alert" hx-get="/console/banner"' in board
        assert "health-alarm" not in _banner(client)
        with client.stream("GET", "/console/events") as events:
            assert events.status_code == 200
            lines = events.iter_lines()
            assert next(lines) == ": connected"
            assert present(leaf_hash(b"one history")).status_code == 200  # cosigned
            refused = present(leaf_hash(b"another history"))
            assert refused.status_code == 409
            assert refused.json()["error"] == "equivocation"
            seen: list[str] = []
            for line in lines:
                seen.append(line)
                if seen[-2:-1] == ["event: alarm"]:
                    break
                assert len(seen) < 200, seen
            assert seen[-1] == 'data: "RU-GS"'  # the journal entry's subject
        banner = _banner(client)
    assert 'data-kind="log-equivocation"' in banner
    assert "The peer signed two different logs" in banner
    assert "RU-GS signed two different roots for size 3" in banner


async def test_the_banner_follows_alarms_and_tasks_down_until_cleared(make_node: Make
                                                                      ) -> None:
    """The banner fragment of a real node (its database, alarm facility and supervisor;
    the app served in-process): a raised alarm shows with its kind, subject, message and
    since when, and the count once repeated; a supervised task that keeps failing shows as
    restarting with its last error; cleared alarms and a stopped task leave the banner
    empty. Link health lists every task with its state."""
    import time

    from hotline.accounts.offline import add_operator
    from hotline.accounts.totp import code_at
    from hotline.console.i18n import Formatter
    from hotline.health.alarms import Alarm
    from hotline.node import open_node
    from tests.nodes import PASSPHRASE

    made = make_node("US-JS")
    apply_scenario(made)
    secret = add_operator(made.dir, "nmcc-1", PASSWORD).secret
    node = open_node(made.dir, PASSPHRASE)
    await node.start()
    try:
        transport = httpx.ASGITransport(app=node.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            page = await client.get("/login?lang=en")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token
            client.headers["Cookie"] = f"__Host-hotline-login={token.group(1)}"
            r = await client.post("/login", data={
                "csrf": token.group(1), "operator": "nmcc-1", "password": PASSWORD,
                "code": code_at(secret, time.time())})
            assert r.status_code == 303, r.text
            session = re.search(r"__Host-hotline-session=([^;]+)", r.headers["set-cookie"])
            assert session
            client.headers["Cookie"] = f"__Host-hotline-session={session.group(1)}"

            async def banner() -> str:
                r = await client.get("/console/banner", headers={"HX-Request": "true"})
                assert r.status_code == 200, r.text
                return r.text

            assert "<section" not in await banner()
            skew = Alarm("clock-skew", "RU-GS", "RU-GS's clock is 250 s ahead of ours")
            assert await node.alarms.raise_(skew)
            shown = await banner()
            [row] = [a for a in await node.alarms.standing() if a.cause == skew.key]
            assert 'data-cause="clock-skew:RU-GS"' in shown
            assert "The peer&#39;s clock is off" in shown
            assert '<bdi dir="ltr">RU-GS</bdi>' in shown
            assert "RU-GS&#39;s clock is 250 s ahead of ours" in shown
            assert f"since {Formatter('en').datetime(row.first_at)}" in shown
            assert TIMES not in shown
            assert not await node.alarms.raise_(skew)  # a repeat only counts
            assert f"{TIMES}2" in await banner()
            assert "raised 2 times" in await banner()  # for screen readers

            async def broken() -> None:
                raise OSError("disk quota exceeded on /var/spool/probe")

            node.supervisor.spawn("probe", broken)
            deadline = time.monotonic() + 10
            # the task down, and the alarm the supervisor's report raised for it
            wanted = ('data-task="probe"', 'data-cause="task-failed:probe"')
            shown = await banner()
            while not all(w in shown for w in wanted):
                assert time.monotonic() < deadline, shown
                await asyncio.sleep(0.02)
                shown = await banner()
            assert "Background task down, restarting" in shown
            assert "OSError: disk quota exceeded on /var/spool/probe" in shown

            await node.supervisor.cancel("probe")
            shown = await banner()
            assert 'data-task="probe"' not in shown  # stopped, not down
            links = (await client.get("/links")).text
            assert '<tr data-task="probe" data-state="stopped">' in links
            assert '<tr data-task="timers" data-state="running">' in links
            assert "OSError: disk quota exceeded" in links

            for cause in (skew.key, "task-failed:probe"):
                assert await node.alarms.clear(cause)
            assert "<section" not in await banner()
    finally:
        await node.stop()


def test_a_shift_in_a_role_not_held_is_refused_once_and_changes_nothing(
        node: NodeProcess) -> None:
    """nmcc-1 holds nmcc-do only. Taking a shift in cjcs — by the watch or by a window —
    is refused 403 ``role-not-held`` with the console's sentence, one security-log line
    each, and no override stored; so is the page of cjcs. A take without the session's
    token is refused before the role is looked at; a bad local time names its field.
    The role nmcc-1 holds works through the same route."""
    from hotline.accounts.offline import add_operator

    secret = add_operator(node.dir, "nmcc-1", PASSWORD).secret

    def overrides() -> list[tuple[object, ...]]:
        return [tuple(r) for r in node.query(
            "SELECT role, operator, from_ms, until_ms FROM schedule_overrides")]

    def refused_once(before: int) -> str:
        lines = wait_until(lambda: node.log_lines("hotline.security:")[before:] or None, 10,
                           what="the refusal's security-log line")
        assert len(lines) == 1, lines
        return str(lines[0])

    cjcs_before = node.api("GET", "/api/v1/schedules/cjcs/who").json()["holders"]
    with httpx.Client(base_url=node.url) as client:
        _log_in(client, secret)
        page = client.get("/schedules/nmcc-do")
        assert page.status_code == 200
        assert "America/New_York" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        origin = {"Origin": node.url}
        for form in ({"when": "current"},
                     {"when": "window", "from": "2030-01-01T08:00",
                      "until": "2030-01-01T20:00"}):
            seen = len(node.log_lines("hotline.security:"))
            r = client.post("/schedules/cjcs/take", data={"csrf": csrf.group(1), **form},
                            headers=origin)
            assert r.status_code == 403
            assert "You do not hold that role, so you cannot act in it. Nothing was " \
                   "changed." in r.text.replace("&#39;", "'")
            line = refused_once(seen)
            assert "nmcc-1" in line
            assert "cjcs" in line
        seen = len(node.log_lines("hotline.security:"))
        assert client.get("/schedules/cjcs").status_code == 403
        refused_once(seen)
        seen = len(node.log_lines("hotline.security:"))
        r = client.post("/schedules/nmcc-do/take", data={"when": "current"}, headers=origin)
        assert r.status_code == 403  # no token
        assert "csrf" in refused_once(seen)
        seen = len(node.log_lines("hotline.security:"))
        r = client.post("/schedules/nmcc-do/take", headers=origin, data={
            "csrf": csrf.group(1), "when": "window", "from": "2030-01-01T08:00",
            "until": "soon"})
        assert r.status_code == 422
        assert "until: " in refused_once(seen)
        seen = len(node.log_lines("hotline.security:"))
        assert client.get("/schedules/NMCC").status_code == 422  # not a role id
        assert "path.role" in refused_once(seen)
        assert overrides() == []
        assert node.api("GET", "/api/v1/schedules/cjcs/who").json()["holders"] == cjcs_before

        r = client.post("/schedules/nmcc-do/take", headers=origin, data={
            "csrf": csrf.group(1), "when": "window", "from": "2030-01-01T08:00",
            "until": "2030-01-01T20:00"})
        assert r.status_code == 303
        assert r.headers["location"] == "/schedules/nmcc-do?done=taken"
    # 08:00 in New York in January is 13:00 UTC
    start = int(datetime(2030, 1, 1, 13, tzinfo=UTC).timestamp() * 1000)
    assert overrides() == [("nmcc-do", "nmcc-1", start, start + 12 * 3600 * 1000)]
    who = node.api("GET", f"/api/v1/schedules/nmcc-do/who?at_ms={start + 60_000}")
    assert who.json()["holders"] == ["nmcc-1"]
    # a role without a schedule (cjcs: the roster only) is shown in UTC, holder as the API
    secret = add_operator(node.dir, "cjcs-1", PASSWORD).secret
    with httpx.Client(base_url=node.url) as client:
        _log_in(client, secret, "cjcs-1")
        page = client.get("/schedules/cjcs")
        assert page.status_code == 200
        assert "Times in UTC, the schedule" in page.text.replace("&#39;", "'")
        shown = re.search(r'class="on-duty-now" data-holders="([^"]*)"', page.text)
        assert shown
        holders = node.api("GET", "/api/v1/schedules/cjcs/who").json()["holders"]
        assert shown.group(1) == ",".join(holders)
        listing = client.get("/schedules")
        assert listing.status_code == 200
        assert 'data-role="cjcs"' in listing.text
        assert 'data-role="nmcc-do"' not in listing.text


def test_asking_again_names_the_ringing_call_only_to_who_may_read_it(
        make_sqlite_node: Make) -> None:
    """nmcc-do's call to cgs@RU-GS still rings. cjcs-1 (who has no part in it) asking
    to call that desk is asked to confirm and told a call is in progress (the party's
    to know), but not which call; nmcc-1, who placed it, is shown its id."""
    from hotline.accounts.offline import add_operator
    from tests.calls import place, us_and_ru

    us, _ru = us_and_ru(make_sqlite_node)
    secrets = {op: add_operator(us.dir, op, PASSWORD).secret for op in ("nmcc-1", "cjcs-1")}
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "radar track")
    for operator, role, shown in (("cjcs-1", "cjcs", False), ("nmcc-1", "nmcc-do", True)):
        with httpx.Client(base_url=us.url) as client:
            _log_in(client, secrets[operator], operator)
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/board").text)
            assert csrf
            r = client.post("/board/call", data={"csrf": csrf.group(1), "to": "cgs@RU-GS",
                                                 "as": role, "reason": "again"},
                            headers={"Origin": us.url})
            assert r.status_code == 409, r.text
            assert "confirm-call" in r.text
            assert (call_id in r.text) is shown, operator
    calls = us.api("GET", "/api/v1/calls").json()["calls"]
    assert [c["id"] for c in calls if c["direction"] == "out"] == [call_id]  # none placed
