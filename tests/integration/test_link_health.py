"""Link health on real node processes over real sockets, with the TCP fault proxy.

US-JS tests RU-GS's two endpoints (each a fault proxy in front of RU's port) every
0.3 s. Cutting the primary fails the line over to the alternate (status and the log say
so, an ``endpoint-down`` alarm stands); cutting both takes the link degraded, then down
within the thresholds, and rings the duty officer (``[settings] alarm_role``); healing
brings it back up and the alarms are recorded as cleared. A forged or unsigned link test
is refused with one security-log line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import tomli_w

from hotline.admin import accept_link, make_link_offer, read_offer
from hotline.protocol import canonical
from hotline.protocol.keys import PartyKeys
from hotline.protocol.linktest import make_probe, verify_answer
from tests.calls import apply_toml
from tests.faultproxy import FaultProxy
from tests.nodes import PASSPHRASE, NodeProcess, free_port, link, wait_until

Make = Callable[..., NodeProcess]

US_DIRECTORY = """
[settings]
alarm_role = "duty"

[roles.duty]
title = { en = "Duty officer" }

[operators.duty-1]
name = "Duty one"
roles = ["duty"]

[[roster]]
operator = "duty-1"
role = "duty"
status = "on-duty"

[channels.pager]
kind = "webhook"
url = "PAGER"
secret = "0123456789abcdef0123456789abcdef"

[chains.duty]
steps = [{ ring = ["duty"], channels = ["console", "pager"], wait = "2m" }]

[links.RU-GS]
may_call = {}
accept = {}
"""


class _Pager(BaseHTTPRequestHandler):
    """The duty officer's pager: keeps every alert posted to it."""

    alerts: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.alerts.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def pager() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    alerts: list[dict[str, Any]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Pager", (_Pager,), {"alerts": alerts}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/page", alerts
    server.shutdown()
    server.server_close()


def _cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "hotline", *args], capture_output=True,
                          text=True, check=True, env={**os.environ, "COLUMNS": "250"}).stdout


def _peer(node: NodeProcess, party: str) -> dict[str, Any]:
    return node.peer_status(party)


def _alarms(node: NodeProcess) -> set[str]:
    return {a["cause"] for a in node.status()["alarms"]}


def _rung(alerts: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [a for a in alerts if kind + ":" in json.dumps(a)]


def _cleared(node: NodeProcess, cause: str) -> bool:
    rows = node.query("SELECT entry FROM log_entries WHERE kind = 'alarm-cleared'")
    return any(json.loads(r.entry)["body"]["cause"] == cause for r in rows)


def test_a_link_fails_over_goes_down_alarms_and_recovers(
        make_sqlite_node: Make, pager: tuple[str, list[dict[str, Any]]]) -> None:
    pager_url, alerts = pager
    ru_port = free_port()
    primary, alternate = FaultProxy(ru_port), FaultProxy(ru_port)
    try:
        us = make_sqlite_node("US-JS")
        ru = make_sqlite_node("RU-GS", endpoints=[primary.url, alternate.url], port=ru_port)
        us.configure("health", test_every_seconds=0.3, test_timeout_seconds=1.0, window=6,
                     down_after=3, degraded_loss=0.2, down_loss=0.5)
        link(us, ru)
        apply_toml(us, US_DIRECTORY.replace("PAGER", pager_url))
        us.start()
        ru.start()

        wait_until(lambda: _peer(us, "RU-GS")["health"] == "up", 30, what="the link up")
        up = _peer(us, "RU-GS")
        assert up["state"] in ("idle", "sending")  # today's field kept
        assert up["current_endpoint"] == primary.url
        assert up["rtt_ms"] > 0
        assert datetime.fromisoformat(up["last_good_test_at"])
        assert up["clock_offset_ms"] is not None
        assert abs(up["clock_offset_ms"]) <= up["clock_offset_error_ms"] + 1000
        assert [e["endpoint"] for e in up["endpoint_health"]] == [primary.url, alternate.url]
        assert all(rtt is None or rtt > 0 for _, rtt in up["rtt_last_hour"])
        assert any(rtt is not None for _, rtt in up["rtt_last_hour"])
        # the CLI prints the same: `status --json` whole, and a line per link
        shown = json.loads(_cli("status", "--dir", str(us.dir), "--json"))
        [cli_peer] = [p for p in shown["peers"] if p["party"] == "RU-GS"]
        for name in ("state", "health", "rtt_ms", "clock_offset_ms", "current_endpoint",
                     "last_good_test_at", "desks_staffed"):
            assert name in cli_peer, name
        assert f"link RU-GS: up via {primary.url}" in _cli("status", "--dir", str(us.dir))

        # the primary goes dark: failover to the alternate, shown and alarmed
        primary.partition()
        wait_until(lambda: _peer(us, "RU-GS")["current_endpoint"] == alternate.url, 30,
                   what="failover to the alternate endpoint")
        wait_until(lambda: f"endpoint-down:RU-GS:{primary.url}" in _alarms(us), 30,
                   what="the endpoint-down alarm")
        peer = _peer(us, "RU-GS")
        assert peer["health"] == "up"
        assert {e["endpoint"]: e["health"] for e in peer["endpoint_health"]}[primary.url] \
            == "down"
        assert us.log_lines(f"failing over from {primary.url} (degraded) to {alternate.url} (up)")
        # messages go through the alternate meanwhile
        us.send("RU-GS", ["through the alternate"])
        wait_until(lambda: [m["text"] for m in ru.inbox()] == ["through the alternate"], 30,
                   what="delivery through the alternate")

        # both go dark: degraded at the first lost test, then down; the duty officer rung
        alternate.partition()
        wait_until(lambda: _peer(us, "RU-GS")["health"] == "down", 30, what="the link down")
        assert us.log_lines("link to RU-GS is degraded (was up)")
        assert us.log_lines("link to RU-GS is down (was degraded)")
        assert "link-down:RU-GS" in _alarms(us)
        wait_until(lambda: _rung(alerts, "link-down"), 30, what="the duty officer paged")
        ring = _rung(alerts, "link-down")[0]
        assert "duty@US-JS" in json.dumps(ring)
        assert _rung(alerts, "link-degraded")

        # healing: back up, the alarms cleared and the clearing on record
        primary.heal()
        alternate.heal()
        wait_until(lambda: _peer(us, "RU-GS")["health"] == "up", 30, what="recovery")
        wait_until(lambda: not {c for c in _alarms(us)
                                if c.startswith(("link-", "endpoint-"))}, 30,
                   what="the link alarms cleared")
        assert _cleared(us, "link-down:RU-GS")
        assert _cleared(us, f"endpoint-down:RU-GS:{primary.url}")
        wait_until(lambda: _peer(us, "RU-GS")["current_endpoint"] == primary.url, 30,
                   what="the primary preferred again")
        assert us.log_lines(f"going back from {alternate.url}")
    finally:
        primary.close()
        alternate.close()


def test_a_forged_or_unsigned_link_test_is_refused_and_logged(make_sqlite_node: Make) -> None:
    us = make_sqlite_node("US-JS")
    ru = make_sqlite_node("RU-GS")
    link(us, ru)
    ru.start()
    url = ru.url + "/federation/v1/linktest"
    keys = us.private_keys()
    now = int(datetime.now().timestamp() * 1000)

    good = make_probe("US-JS", "RU-GS", ru.url, now, keys)
    answered = httpx.post(url, content=canonical.encode(good))
    assert answered.status_code == 200, answered.text
    verify_answer(answered.json()["answer"], ru.public_keys(), good)

    forged = make_probe("US-JS", "RU-GS", ru.url, now, PartyKeys.generate())
    forged["kid"] = keys.public.key_id  # claims US's key, signed by another
    unsigned = {k: v for k, v in good.items() if k != "sig"}
    altered = {**good, "endpoint": "http://elsewhere.example"}
    for body, error in ((forged, "bad-linktest"), (unsigned, "bad-linktest"),
                        (altered, "bad-linktest"), (b"{not json", "bad-linktest")):
        raw = body if isinstance(body, bytes) else canonical.encode(body)
        before = len(ru.log_lines("refused a link test"))
        response = httpx.post(url, content=raw)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == error
        wait_until(lambda before=before: len(ru.log_lines("refused a link test")) == before + 1,
                   10, what="one security-log line")
    stranger = make_probe("XX-NO", "RU-GS", ru.url, now, PartyKeys.generate())
    response = httpx.post(url, content=canonical.encode(stranger))
    assert response.status_code == 403
    assert response.json()["error"] == "unknown-sender"
    wait_until(lambda: ru.log_lines("refused a link test from 127.0.0.1: unknown-sender"),
               10, what="the unknown sender's security-log line")


def test_removing_a_down_link_clears_its_link_and_endpoint_alarms(
        make_sqlite_node: Make) -> None:
    """The link-health alarms describe the live line: a link removed while down must not
    leave ``link-down`` / ``endpoint-down`` standing for a peer nobody tests any more."""
    ru_port = free_port()
    proxy = FaultProxy(ru_port)
    try:
        us = make_sqlite_node("US-JS")
        ru = make_sqlite_node("RU-GS", endpoints=[proxy.url], port=ru_port)
        us.configure("health", test_every_seconds=0.3, test_timeout_seconds=1.0, window=4,
                     down_after=2)
        link(us, ru)
        us.start()
        ru.start()
        wait_until(lambda: _peer(us, "RU-GS")["health"] == "up", 30, what="the link up")
        proxy.partition()
        causes = {"link-down:RU-GS", "link-degraded:RU-GS", f"endpoint-down:RU-GS:{proxy.url}"}
        wait_until(lambda: causes <= _alarms(us), 30, what="the link alarms raised")
        answer = us.api("POST", "/api/v1/links/RU-GS/remove", json={"wait_seconds": 0.5})
        assert answer.status_code == 200, answer.text
        wait_until(lambda: not causes & _alarms(us), 30, what="the link alarms cleared")
        assert all(_cleared(us, cause) for cause in causes)
        wait_until(lambda: us.peer_status("RU-GS")["state"] == "removed", 10,
                   what="the link shown removed")
        assert not causes & _alarms(us)
    finally:
        proxy.close()


def test_an_endpoint_dropped_by_a_new_offer_has_its_alarm_cleared(
        make_sqlite_node: Make) -> None:
    """RU's primary is down (``endpoint-down`` stands), then RU offers anew without it:
    nothing tests that endpoint any more, so its alarm must not stand forever."""
    ru_port = free_port()
    primary, alternate = FaultProxy(ru_port), FaultProxy(ru_port)
    try:
        us = make_sqlite_node("US-JS")
        ru = make_sqlite_node("RU-GS", endpoints=[primary.url, alternate.url], port=ru_port)
        us.configure("health", test_every_seconds=0.3, test_timeout_seconds=1.0, window=4,
                     down_after=2)
        link(us, ru)
        us.start()
        ru.start()
        wait_until(lambda: _peer(us, "RU-GS")["health"] == "up", 30, what="the link up")
        primary.partition()
        cause = f"endpoint-down:RU-GS:{primary.url}"
        wait_until(lambda: cause in _alarms(us), 30, what="the endpoint-down alarm")
        _set_endpoints(ru, [alternate.url])
        accept_link(us.dir, read_offer(make_link_offer(ru.dir, PASSPHRASE)[0]))
        wait_until(lambda: _peer(us, "RU-GS")["endpoints"] == [alternate.url], 30,
                   what="the new offer in force")
        wait_until(lambda: cause not in _alarms(us), 30, what="the dropped endpoint's alarm "
                                                            "cleared")
        assert _cleared(us, cause)
        assert _peer(us, "RU-GS")["health"] == "up"
    finally:
        primary.close()
        alternate.close()


def _set_endpoints(node: NodeProcess, endpoints: list[str]) -> None:
    path = node.dir / "config.toml"
    data = tomllib.loads(path.read_text())
    data["endpoints"] = endpoints
    path.write_text(tomli_w.dumps(data))


def test_a_stalled_link_does_not_hold_up_the_tests_of_another(make_sqlite_node: Make) -> None:
    """RU holds every answer until the (long) test timeout; UA goes dark meanwhile: UA's
    link must still be judged down at its own pace, not once per RU timeout."""
    ru_port, ua_port = free_port(), free_port()
    ru_proxy, ua_proxy = FaultProxy(ru_port), FaultProxy(ua_port)
    try:
        us = make_sqlite_node("US-JS")
        ru = make_sqlite_node("RU-GS", endpoints=[ru_proxy.url], port=ru_port)
        ua = make_sqlite_node("UA-SBGS", endpoints=[ua_proxy.url], port=ua_port)
        us.configure("health", test_every_seconds=0.3, test_timeout_seconds=300.0,
                     window=4, down_after=2)
        link(us, ru)
        link(us, ua)
        for node in (us, ru, ua):
            node.start()
        wait_until(lambda: _peer(us, "RU-GS")["health"] == _peer(us, "UA-SBGS")["health"]
                   == "up", 30, what="both links up")
        ru_proxy.hold_replies()
        ru_proxy.partition()  # the pooled connection goes: the next ones are held
        ru_proxy.heal()
        ua_proxy.partition()
        wait_until(lambda: _peer(us, "UA-SBGS")["health"] == "down", 60,
                   what="UA judged down while RU's tests hang")
        assert "link-down:UA-SBGS" in _alarms(us)
    finally:
        ru_proxy.release()
        ru_proxy.close()
        ua_proxy.close()


def test_tests_answered_while_batches_fail_is_said_on_the_health_line(
        make_sqlite_node: Make) -> None:
    """RU answers the (small) link tests but refuses US's envelopes (its size limit is
    below what US sends): health says up, the state says failing, and the status line
    of the link health says both rather than "up" alone."""
    us = make_sqlite_node("US-JS")
    ru = make_sqlite_node("RU-GS")
    us.configure("health", test_every_seconds=0.3, test_timeout_seconds=2.0)
    ru.configure("delivery", max_envelope_bytes=1024)
    link(us, ru)
    us.start()
    ru.start()
    wait_until(lambda: _peer(us, "RU-GS")["health"] == "up", 30, what="the link up")
    us.send("RU-GS", ["x" * 3000])
    wait_until(lambda: _peer(us, "RU-GS")["state"] == "failing", 30,
               what="delivery failing")
    assert _peer(us, "RU-GS")["health"] == "up"
    line = next(line for line in _cli("status", "--dir", str(us.dir)).splitlines()
                if line.startswith("link RU-GS:"))
    assert "up via" in line
    assert "but delivery is failing" in line, line


def test_a_link_down_alarm_that_could_not_be_written_is_raised_once_the_store_writes(
        make_sqlite_node: Make) -> None:
    """RU stops while another process holds US's database locked (past the 10 s busy
    timeout): the prober judges the link down but cannot store ``link-down`` and fails
    (the supervisor restarts it). Once the lock is gone the alarm must stand: the
    restarted prober raises what it could not, instead of taking the state it already
    recorded as alarmed (before the fix, the link stayed down with no alarm at all)."""
    import sqlite3

    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    us.configure("health", test_every_seconds=0.3, test_timeout_seconds=1.0, down_after=1)
    link(us, ru)
    ru.start()
    us.start()
    wait_until(lambda: _peer(us, "RU-GS")["health"] == "up" and not _alarms(us), 30,
               what="the link up, no alarm standing")
    path = us.config.db.removeprefix("sqlite:///")
    locker = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        ru.stop()
        wait_until(lambda: us.log_lines("task link-prober failed"), 30,
                   what="the prober to fail on the locked store")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    wait_until(lambda: "link-down:RU-GS" in _alarms(us), 30, what="the link-down alarm")
    assert _peer(us, "RU-GS")["health"] == "down"
    assert any(cause.startswith("endpoint-down:RU-GS:") for cause in _alarms(us))
