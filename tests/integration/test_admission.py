"""Admission control on real nodes over real sockets (THREATS T19): a flooding peer is
refused 429 with Retry-After while another peer and the flooder's control traffic pass;
a sender slowed down by 429 delivers everything exactly once; idle, slow-loris and
slow-body connections are closed within their timeouts; headers over the size limit are
refused 431; an address over its connection cap is refused while another address
connects, and a node at its total cap refuses the newcomer 503 and takes one again once
a connection closes. On SQLite and PostgreSQL (the cap tests need no store: SQLite).

The flooder's traffic comes from 127.0.0.2 and the honest peer's from 127.0.0.1 (the
node listens on 127.0.0.1; Linux routes all of 127/8 to loopback), so each has its own
address budget, as two peers on two machines would."""

from __future__ import annotations

import contextlib
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


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    base: Path = tmp_path_factory.mktemp(f"admission-{request.param}")
    with nodes_on(str(request.param), base) as make:
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
        # answered before its body was read: the node closes rather than read the rest
        assert answers[2].headers["connection"] == "close"
        # and now, while the address owes those bytes, a batch is refused on its
        # request line alone (a small one: a client still writing a large body to a
        # closed connection may see it reset before it reads the answer)
        again = client.post(b.url + ENVELOPES, content=b"x" * 1024)
        assert again.status_code == 429
        assert again.headers["connection"] == "close"
        assert again.json()["retry_after"] >= 1
        assert client.get(b.url + "/healthz").status_code == 200  # httpx reconnects
    assert b.log_lines("rate-limited request from 127.0.0.3: address over its control budget")


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


def test_headers_over_the_size_limit_are_refused_431(world: World) -> None:
    """Bytes that never complete the headers are cut at ``max_header_bytes`` (default
    64 KiB), whatever the parser would tolerate; one log line."""
    sock = _connect("127.0.0.9", world.b.port)
    try:
        sock.sendall(b"POST /federation/v1/envelopes HTTP/1.1\r\nhost: b\r\n")
        pad = b"x-pad: " + b"a" * 1000 + b"\r\n"
        try:
            for _ in range(80):  # 80 KiB of header lines, never the blank line
                sock.sendall(pad)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the node closed on us mid-way: what its answer says is below
        _took, said = _closed_within(sock, 10)
    finally:
        sock.close()
    assert said.startswith(b"HTTP/1.1 431"), said
    assert b"headers-too-large" in said
    wait_until(lambda: world.b.log_lines("closed connection from 127.0.0.9: "
                                         "headers-too-large"), 5, what="the 431 log line")
    with _client("127.0.0.9") as client:  # the address is not locked out
        assert client.get(world.b.url + "/healthz").status_code == 200


TOTAL_CAP = 6


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node of its own with a total cap of six connections (four per address) and
    long timeouts, linked to nothing, so the only connections to it are this test's."""
    with nodes_on("sqlite", tmp_path_factory.mktemp("admission-capped")) as make:
        node = make("CC-CAP")
        node.configure("admission", max_connections=TOTAL_CAP, max_connections_per_address=4,
                       idle_timeout_seconds=60, header_timeout_seconds=60)
        node.start()
        yield node


def _probe(sock: socket.socket) -> bytes:
    """The status line of a ``GET /healthz`` on ``sock`` (b"" if closed unanswered);
    an accepted connection stays open (keep-alive), a refused one says why and closes."""
    sock.settimeout(10)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: b\r\n\r\n")
    said = b""
    try:
        while b"\r\n\r\n" not in said and (chunk := sock.recv(4096)):
            said += chunk
        head, _, body = said.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length and (chunk := sock.recv(4096)):
            body += chunk  # the whole answer, so the next probe starts clean
    except ConnectionResetError:
        pass
    return said.split(b"\r\n", 1)[0]


def test_a_node_at_its_total_connection_cap_refuses_the_newcomer_503(
        capped: NodeProcess) -> None:
    addresses = ["127.0.0.21"] * 4 + ["127.0.0.22"] * 2  # none over its own cap of 4
    held: list[socket.socket] = []
    try:
        for address in addresses:
            sock = _connect(address, capped.port)
            held.append(sock)
            assert _probe(sock) == b"HTTP/1.1 200 OK", f"connection {len(held)}"
        newcomer = _connect("127.0.0.23", capped.port)
        _took, said = _closed_within(newcomer, 5)
        newcomer.close()
        assert said.startswith(b"HTTP/1.1 503"), said
        assert b"too-many-connections" in said
        assert b"retry-after: 1" in said.lower()
        wait_until(lambda: capped.log_lines("refused connection from 127.0.0.23: "
                                            f"{TOTAL_CAP} connections open in total"),
                   5, what="the 503 log line")
        # the held connections still work, and a closed one frees its place
        assert _probe(held[0]) == b"HTTP/1.1 200 OK"
        held.pop().close()

        def newcomer_accepted() -> bool:
            sock = _connect("127.0.0.23", capped.port)
            try:
                return _probe(sock) == b"HTTP/1.1 200 OK"
            finally:
                sock.close()

        wait_until(newcomer_accepted, 5, what="a place freed by a closed connection")
    finally:
        for sock in held:
            sock.close()


def test_a_batch_of_rejected_envelopes_leaves_one_line_with_counts(world: World) -> None:
    """Rejections are logged per request, not per envelope: the first in full, the
    others counted by reason (so replaying a batch cannot write a line per envelope)."""
    b = world.b
    wrong = [seal(Header(id=new_envelope_id(), sender=world.f.party, recipient="AA-ONE",
                         kid=world.f_keys.public.key_id, seq=world.next_seq + n,
                         ts=time.time_ns() // 1_000_000, type="message"),
                  {"text": "misaddressed"}, world.f_keys, world.b_public) for n in range(3)]
    batch = b"\n".join([*wrong, b"\xff not json", b'{"hello":"world"}'])
    before = len(b.log_lines("from 127.0.0.11"))
    with _client("127.0.0.11") as client:
        answer = client.post(b.url + ENVELOPES, content=batch)
    assert 400 <= answer.status_code < 500, answer.text
    assert [r["error"] for r in answer.json()["results"]] == \
        ["wrong-recipient"] * 3 + ["malformed-envelope"] * 2
    wait_until(lambda: len(b.log_lines("from 127.0.0.11")) > before, 5,
               what="the request's log line")
    lines = b.log_lines("from 127.0.0.11")[before:]
    assert len(lines) == 1, lines
    assert "rejected envelope from 127.0.0.11: 5 of 5 envelope(s): " \
        "malformed-envelope x2, wrong-recipient x3; the first: wrong-recipient" in lines[0]
