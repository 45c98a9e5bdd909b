"""``/metrics`` and the process log on real node processes (issue 14, part 2).

After a call that escalates and is answered, a message, a webhook notification, a
rejected envelope and a delivery failing against a stopped peer, each node's scrape
holds the listed series with the values those events imply. Who may read ``/metrics``:
loopback without a proxy header, else only with the metrics (or operator) token. A
``--log-format json`` line names the call it concerns; the default text log has no
line per request to a peer.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import tomllib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import tomli_w

from tests.calls import apply_toml, place, wait_for_desks, wait_for_event, wait_for_state
from tests.metrics import parse, scrape, total, value
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]
PAGER_SECRET = "0123456789abcdef0123456789abcdef"


class Pager:
    """A webhook receiver on a real socket that accepts every alert (204)."""

    def __init__(self) -> None:
        self.hits = 0
        pager = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                pager.hits += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alert"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pager() -> Iterator[Pager]:
    p = Pager()
    yield p
    p.close()


def with_pager(text: str, url: str) -> str:
    """RU-GS's scenario directory whose first step of the cgs chain also rings a
    webhook channel ``pager`` at ``url``."""
    first = '[[chains.cgs.steps]]\nring = ["cgs"]\n'
    assert first in text
    text = text.replace(first, first + 'channels = ["console", "pager"]\n', 1)
    return text + (f'\n[channels.pager]\nkind = "webhook"\nurl = "{url}"\n'
                   f'secret = "{PAGER_SECRET}"\n')


def test_metrics_after_a_call_a_message_and_a_failing_delivery(make_node: Make,
                                                               pager: Pager) -> None:
    from hotline.scenario import directory_toml
    from tests.calls import SPEED, apply_scenario

    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    apply_scenario(us)
    apply_toml(ru, with_pager(directory_toml("RU-GS", SPEED, 5000, peers=["US-JS"]),
                              pager.url))
    us.start()
    ru.start("--log-format", "json")
    wait_for_desks(us, "RU-GS")

    # a call: rings the principal (and the pager), the deputy, then the duty officer
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "metrics")
    wait_for_event(ru, call_id, "ringing", "ccp-do")
    answer = ru.api("POST", f"/api/v1/calls/{call_id}/answer",
                    json={"as": "ccp-do", "operator": "ccp-1"})
    assert answer.status_code == 200, answer.text
    wait_for_state(us, call_id, "answered")
    # a message
    text = f"metrics {secrets.token_hex(4)}"
    us.send("RU-GS", [text])
    wait_until(lambda: any(m["text"] == text for m in ru.inbox()), 30, what="the message")
    wait_until(lambda: us.peer_status("RU-GS")["queued"] == 0, 30, what="its receipt")
    # an envelope RU-GS rejects
    bad = httpx.post(ru.url + "/federation/v1/envelopes", content=b"{}\n", timeout=30)
    assert bad.status_code >= 400, bad.text
    error_id = bad.json()["results"][0]["error"] if "results" in bad.json() \
        else bad.json()["error"]
    wait_until(lambda: pager.hits >= 1, 30, what="the pager's alert")

    # -- the callee's node -------------------------------------------------------------
    def ru_samples() -> dict:  # type: ignore[type-arg]
        response = scrape(ru.url)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return parse(response.text)[0]

    got = wait_until(lambda: (s := ru_samples()) and value(
        s, "hotline_notifications_total", channel="pager", outcome="delivered") == pager.hits
        and s, 30, what="the pager's outcome counted")
    assert value(got, "hotline_calls", direction="in", state="answered") == 1
    assert total(got, "hotline_calls") == 1
    # each ring after the first is an escalation deadline that fired (principal ->
    # deputy -> duty officer, and the chain's repeat if it came before the answer)
    rings = [e for e in ru.api("GET", f"/api/v1/calls/{call_id}").json()["history"]
             if e["state"] == "ringing"]
    assert len(rings) >= 3
    assert value(got, "hotline_deadline_lateness_seconds_count",
                 kind="escalate") == len(rings) - 1
    late = value(got, "hotline_deadline_lateness_seconds_sum", kind="escalate")
    assert late is not None
    assert 0 <= late < 60
    assert value(got, "hotline_rejected_envelopes_total", error=error_id) == 1
    assert total(got, "hotline_rejected_envelopes_total") == 1
    assert value(got, "hotline_task_restarts_total", task="timers") == 0
    assert total(got, "hotline_task_restarts_total") == 0
    released = value(got, "hotline_messages", peer="US-JS", direction="in", state="released")
    assert released is not None
    assert released >= 2
    assert total(got, "hotline_link_state", peer="US-JS") == 1

    # -- a failing delivery on the caller's node ----------------------------------------
    ru.stop()
    us.send("RU-GS", ["while RU-GS is down"])
    wait_until(lambda: us.peer_status("RU-GS")["state"] == "unreachable", 30,
               what="RU-GS unreachable")
    response = scrape(us.url)
    assert response.status_code == 200, response.text
    samples, _ = parse(response.text)
    status = us.peer_status("RU-GS")
    assert status["queued"] == 1
    assert value(samples, "hotline_queue_depth", peer="RU-GS") == status["queued"]
    age = value(samples, "hotline_queue_oldest_age_seconds", peer="RU-GS")
    assert age is not None
    assert 0 < age < 120
    assert value(samples, "hotline_messages", peer="RU-GS", direction="out",
                 state="queued") == 1
    assert value(samples, "hotline_messages", peer="RU-GS", direction="out",
                 state="delivered") == status["delivered"]
    assert value(samples, "hotline_link_state", peer="RU-GS", state="unreachable") == 1
    assert total(samples, "hotline_link_state", peer="RU-GS") == 1
    assert value(samples, "hotline_calls", direction="out", state="answered") == 1
    # every envelope this process enqueued and got a receipt for was measured: the call,
    # the message (its desk reports too), each in a positive time
    measured = value(samples, "hotline_delivery_latency_seconds_count", peer="RU-GS")
    assert measured is not None
    assert measured >= 2
    spent = value(samples, "hotline_delivery_latency_seconds_sum", peer="RU-GS")
    assert spent is not None
    assert spent > 0
    assert value(samples, "hotline_delivery_latency_seconds_bucket", peer="RU-GS",
                 le="+Inf") == measured

    # -- the logs ----------------------------------------------------------------------
    lines = [line for line in ru.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    about = [r for r in records if r.get("call_id") == call_id]
    assert any(r["logger"] == "hotline.calls" and "answered" in r["message"] for r in about)
    # the operator's answer, at the API boundary, names the call too
    assert any(r["logger"] == "hotline.api" and "/answer" in r["message"] for r in about)
    # the rejected envelope's security-log line names the request it came in
    refused = [r for r in records if r["logger"] == "hotline.security"
               and r["message"].startswith("rejected envelope")]
    assert len(refused) == 1
    assert len(refused[0].get("request_id", "")) == 16
    # the default text log stays terse: no line per request to (or from) a peer
    text_log = us.log_path.read_text()
    assert "/federation/" not in text_log
    assert "HTTP/1.1" not in text_log


def non_loopback_address() -> str:
    """This host's address on its outward interface (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the interface
        address: str = s.getsockname()[0]
    assert not address.startswith("127."), "this host has no non-loopback address"
    return address


def test_metrics_is_refused_from_elsewhere_and_through_a_proxy_without_a_token(
        make_sqlite_node: Make) -> None:
    node = make_sqlite_node("US-JS")
    path = node.dir / "config.toml"
    data = tomllib.loads(path.read_text())
    data["listen"] = f"0.0.0.0:{node.port}"
    path.write_text(tomli_w.dumps(data))
    node.configure("metrics", token_file="metrics.token")
    token = secrets.token_urlsafe(32)
    (node.dir / "metrics.token").write_text(token + "\n")
    (node.dir / "metrics.token").chmod(0o600)  # a secret: readable by others is refused
    node.start()

    def refusals() -> int:
        return len(node.log_lines("/metrics"))

    assert scrape(node.url).status_code == 200  # loopback, no proxy: open
    elsewhere = f"http://{non_loopback_address()}:{node.port}"
    cases: list[tuple[str, dict[str, str], int, str]] = [
        (elsewhere, {}, 403, "metrics-forbidden"),
        (node.url, {"X-Forwarded-For": "203.0.113.9"}, 403, "metrics-forbidden"),
        # what nginx on this host sends for a client on this host: still a proxy
        (node.url, {"X-Forwarded-For": "127.0.0.1"}, 403, "metrics-forbidden"),
        (node.url, {"Forwarded": "for=127.0.0.1"}, 403, "metrics-forbidden"),
        (node.url, {"X-Real-IP": "127.0.0.1"}, 403, "metrics-forbidden"),
        (elsewhere, {"Authorization": "Bearer wrong"}, 401, "unauthorized"),
        (node.url, {"X-Forwarded-For": "203.0.113.9", "Authorization": "Basic eDp5"},
         401, "unauthorized"),
    ]
    for n, (base, headers, status, error) in enumerate(cases, start=1):
        answer = scrape(base, headers=headers)
        assert answer.status_code == status, (headers, answer.text)
        assert answer.json()["error"] == error
        wait_until(lambda n=n: refusals() == n, 10, what="one security-log line")  # type: ignore[misc]
        assert "hotline.security" in node.log_lines("/metrics")[-1]
    for base, headers in [(elsewhere, {"Authorization": f"Bearer {token}"}),
                          (node.url, {"X-Forwarded-For": "203.0.113.9",
                                      "Authorization": f"Bearer {token}"}),
                          (elsewhere, {"Authorization": f"Bearer {node.token}"})]:
        answer = scrape(base, headers=headers)
        assert answer.status_code == 200, answer.text
        assert "hotline_queue_depth" in answer.text
    assert refusals() == len(cases)
    log = node.log_path.read_text()
    assert token not in log
    assert node.token not in log
