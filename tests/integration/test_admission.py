"""Admission control on real nodes over real sockets (THREATS T19): a flooding peer is
refused 429 with Retry-After while another peer and the flooder's control traffic pass;
a sender slowed down by 429 delivers everything exactly once; idle, slow-loris and
slow-body connections are closed within their timeouts; an address over its connection
cap is refused while another address connects.

The flooder's traffic comes from 127.0.0.2 and the honest peer's from 127.0.0.1 (the
node listens on 127.0.0.1; Linux routes all of 127/8 to loopback), so each has its own
address budget, as two peers on two machines would."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.keys import PartyKeys, PublicKeys
from tests.nodes import NodeProcess, link, nodes_on, wait_until

ENVELOPES = "/federation/v1/envelopes"
FLOODER_ADDRESS = "127.0.0.2"
IDLE_S, HEADER_S, BODY_S = 2.0, 1.5, 1.5
PER_ADDRESS = 12
BULK_RATE, BULK_BURST = 20, 40


@dataclass
class World:
    a: NodeProcess          # an honest peer, a real node
    b: NodeProcess          # the node under attack
    f: NodeProcess          # the flooder's node directory (never started): its keys
    f_keys: PartyKeys
    b_public: PublicKeys
    next_seq: int = 1

    def seal(self, type_: str = "message", text: str = "flood") -> bytes:
        header = Header(id=new_envelope_id(), sender=self.f.party, recipient=self.b.party,
                        kid=self.f_keys.public.key_id, seq=self.next_seq,
                        ts=time.time_ns() // 1_000_000, type=type_)
        self.next_seq += 1
        return seal(header, {"text": text}, self.f_keys, self.b_public)

    def stored_from(self, party: str) -> int:
        return int(self.b.query("SELECT COUNT(*) AS n FROM inbound WHERE peer = :p",
                                p=party)[0].n)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base: Path = tmp_path_factory.mktemp("admission")
    with nodes_on("sqlite", base) as make:
        a, b, f = make("AA-ONE"), make("BB-TWO"), make("FF-THREE")
        link(a, b)
        link(f, b)
        b.configure("admission", idle_timeout_seconds=IDLE_S, header_timeout_seconds=HEADER_S,
                    body_timeout_seconds=BODY_S, max_connections_per_address=PER_ADDRESS,
                    address_bytes_burst=16 * 1024 * 1024, address_bytes_per_second=256 * 1024,
                    default={"envelopes_per_second": BULK_RATE, "envelopes_burst": BULK_BURST,
                             "control_envelopes_per_second": 5,
                             "control_envelopes_burst": 10})
        a.configure("delivery", backoff_initial_seconds=0.05, backoff_max_seconds=1.0)
        a.start()
        b.start()
        yield World(a, b, f, f.private_keys(), b.public_keys())


def _client(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30.0,
                        headers={"content-type": "application/x-ndjson"})


def test_a_flood_is_refused_429_while_another_peer_and_control_traffic_pass(
        world: World) -> None:
    b = world.b
    refusals_before = len(b.log_lines(f"rate-limited request from {FLOODER_ADDRESS}"))
    started = time.monotonic()
    answers: list[httpx.Response] = []
    with _client(FLOODER_ADDRESS) as flooder:
        # ten batches of 30 as fast as they go: 300 envelopes against a burst of 40
        for _ in range(10):
            batch = b"\n".join(world.seal() for _ in range(30))
            answers.append(flooder.post(b.url + ENVELOPES, content=batch))
        elapsed = time.monotonic() - started
        limited = [r for r in answers if r.status_code == 429]
        assert limited, [r.status_code for r in answers]
        for r in limited:
            assert int(r.headers["retry-after"]) >= 1
            errors = [x for x in r.json()["results"] if "error" in x]
            assert errors
            assert {x["error"] for x in errors} == {"rate-limited"}
            assert all(x["retry_after"] >= 1 for x in errors)
        # never more stored than the bucket allows over the time the flood took
        assert world.stored_from("FF-THREE") <= BULK_BURST + BULK_RATE * elapsed + 1
        # the flooder's control traffic has its own budget: a call signal still passes
        control = flooder.post(b.url + ENVELOPES, content=world.seal("call.state", "ctl"))
        assert control.status_code == 200, control.text
        assert "receipt" in control.json()["results"][0]
    # another peer's messages are delivered meanwhile, by its real sender
    texts = [f"honest {n}" for n in range(5)]
    world.a.send("BB-TWO", texts)
    wait_until(lambda: {m["text"] for m in b.inbox() if m["from"] == "AA-ONE"} >= set(texts),
               15, what="AA-ONE's messages at BB-TWO during the flood")
    # one security-log line per refused request, not per envelope
    wait_until(lambda: len(b.log_lines(f"rate-limited request from {FLOODER_ADDRESS}"))
               - refusals_before == len(limited), 5, what="one log line per refused request")


def test_the_address_budget_refuses_before_reading_the_body(world: World) -> None:
    """A client address over its bytes budget gets 429 on the declared length alone: the
    node neither parses nor verifies what follows."""
    b = world.b
    big = b"x" * (7 * 1024 * 1024)  # 7 MiB: the address's burst is 16 MiB, 256 KiB/s
    with _client("127.0.0.3") as client:
        answers = [client.post(b.url + ENVELOPES, content=big) for _ in range(3)]
        assert [r.status_code for r in answers] == [413, 413, 429]  # the first two: read
        assert int(answers[2].headers["retry-after"]) >= 1
        assert answers[2].json()["error"] == "rate-limited"
        # the connection stays usable: the node skipped the refused body
        assert client.get(b.url + "/healthz").status_code == 200
    assert b.log_lines("rate-limited request from 127.0.0.3: address over its budget")


def test_the_sender_backs_off_on_429_and_delivers_everything_exactly_once(
        world: World) -> None:
    a, b = world.a, world.b
    texts = [f"burst {n}" for n in range(150)]  # well over the burst of 40 at 20/s
    a.send("BB-TWO", texts)
    wait_until(lambda: a.peer_status("BB-TWO").get("last_error") and
               "slow down" in str(a.peer_status("BB-TWO")["last_error"]), 15,
               what="A's sender to be slowed down")

    def mine() -> list[str]:
        return [m["text"] for m in b.inbox() if m["text"].startswith("burst ")]

    wait_until(lambda: len(mine()) >= len(texts), 60, what="all 150 delivered")
    assert mine() == texts  # exactly once each, in order
    wait_until(lambda: int(a.query("SELECT COUNT(*) AS n FROM outbox WHERE peer = 'BB-TWO' "
                                   "AND delivered_at IS NULL")[0].n) == 0, 10,
               what="every receipt stored")
    alarms = a.api("GET", "/api/v1/alarms").json()
    assert not [x for x in alarms.get("alarms", alarms) if "line-down" in str(x)]


def _connect(address: str, port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(address, 0))
    return sock


def _closed_within(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed ``sock`` (reading whatever it said first)."""
    started = time.monotonic()
    sock.settimeout(limit)
    said = b""
    try:
        while chunk := sock.recv(4096):
            said += chunk
    except ConnectionResetError:
        pass
    return time.monotonic() - started, said


def test_idle_connections_are_closed_after_the_idle_timeout(world: World) -> None:
    socks = [_connect("127.0.0.4", world.b.port) for _ in range(10)]
    try:
        waits = []
        for sock in socks:
            took, said = _closed_within(sock, IDLE_S + 5)
            assert said == b""  # closed without a word: housekeeping, not a refusal
            waits.append(took)
        assert IDLE_S - 0.5 <= waits[0] <= IDLE_S + 5, waits
        with _client("127.0.0.4") as client:  # and the address is not locked out
            assert client.get(world.b.url + "/healthz").status_code == 200
    finally:
        for sock in socks:
            sock.close()


def test_slow_loris_headers_are_cut_at_the_header_timeout(world: World) -> None:
    sock = _connect("127.0.0.5", world.b.port)
    try:
        sock.sendall(b"POST /federation/v1/envelopes HTTP/1.1\r\nhost: b\r\n")
        started = time.monotonic()
        sock.settimeout(0.2)
        said = b""
        # one more header byte every 0.2 s, for as long as the node lets it
        while time.monotonic() - started < HEADER_S + 5:
            try:
                sock.sendall(b"x")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            said += chunk
        took = time.monotonic() - started
        assert took <= HEADER_S + 5
        assert said.startswith(b"HTTP/1.1 408"), said
    finally:
        sock.close()
    assert world.b.log_lines("closed connection from 127.0.0.5: header-timeout")


def test_a_slow_body_is_cut_at_the_body_timeout(world: World) -> None:
    sock = _connect("127.0.0.6", world.b.port)
    try:
        sock.sendall(b"POST /federation/v1/envelopes HTTP/1.1\r\nhost: b\r\n"
                     b"content-length: 1000\r\n\r\n" + b"x" * 10)
        took, said = _closed_within(sock, BODY_S + 5)
        assert took <= BODY_S + 5
        assert said.startswith(b"HTTP/1.1 408"), said
    finally:
        sock.close()
    wait_until(lambda: world.b.log_lines("closed connection from 127.0.0.6: body-timeout"),
               5, what="the body-timeout log line")


def test_connections_over_the_cap_of_one_address_are_refused_another_connects(
        world: World) -> None:
    socks = [_connect("127.0.0.7", world.b.port) for _ in range(PER_ADDRESS)]
    try:
        extra = _connect("127.0.0.7", world.b.port)
        _took, said = _closed_within(extra, 5)
        extra.close()
        assert said.startswith(b"HTTP/1.1 429"), said
        assert b"too-many-connections" in said
        with _client("127.0.0.8") as other:
            assert other.get(world.b.url + "/healthz").status_code == 200
    finally:
        for sock in socks:
            sock.close()
    assert world.b.log_lines("refused connection from 127.0.0.7")
