"""Every envelope rejection, sent over HTTP to a running node: the stable error id,
nothing stored, one security-log line (THREATS T1-T8)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.protocol import canonical
from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.keys import PartyKeys, PublicKeys
from tests.nodes import NodeProcess, link, nodes_on, wait_until

ENVELOPES = "/federation/v1/envelopes"


@dataclass
class Line:
    """A sender A whose keys the test holds, and a running receiver B."""

    a: NodeProcess
    b: NodeProcess
    a_keys: PartyKeys
    b_public: PublicKeys
    next_seq: int = 1

    def envelope(self, *, seq: int | None = None, text: str = "hello", **override: Any) -> bytes:
        fields: dict[str, Any] = {"id": new_envelope_id(), "sender": self.a.party,
                                  "recipient": self.b.party, "kid": self.a_keys.public.key_id,
                                  "seq": self.next_seq if seq is None else seq,
                                  "ts": time.time_ns() // 1_000_000, "type": "message"}
        signer = override.pop("signer", self.a_keys)
        to_keys = override.pop("to_keys", self.b_public)
        fields.update(override)
        return seal(Header(**fields), {"text": text}, signer, to_keys)

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(self.b.url + ENVELOPES, content=body, timeout=30.0,
                          headers={"content-type": "application/x-ndjson"})

    def accept(self, raw: bytes) -> httpx.Response:
        response = self.post(raw)
        assert response.status_code == 200, response.text
        self.next_seq += 1
        return response

    def stored(self) -> int:
        return int(self.b.query("SELECT COUNT(*) AS n FROM inbound")[0].n)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def line(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Line]:
    base: Path = tmp_path_factory.mktemp(f"rejections-{request.param}")
    with nodes_on(str(request.param), base) as make:
        a, b = make("AA-ONE"), make("BB-TWO")
        link(a, b)
        b.start()
        yield Line(a, b, a.private_keys(), b.public_keys())


def _flip_signature(raw: bytes) -> bytes:
    obj = canonical.decode(raw)
    sig = bytearray(base64.urlsafe_b64decode(obj["sig"] + "=="))
    sig[10] ^= 0x01
    obj["sig"] = base64.urlsafe_b64encode(bytes(sig)).rstrip(b"=").decode()
    return canonical.encode(obj)


def _resign(raw: bytes, keys: PartyKeys, **changes: Any) -> bytes:
    from hotline.protocol.signing import sign_object

    obj = {k: v for k, v in canonical.decode(raw).items() if k != "sig"}
    obj.update(changes)
    return canonical.encode(sign_object("hotline/envelope/v1", obj, keys))


def _with_seq_text(raw: bytes, seq: str) -> bytes:
    import re

    return re.sub(rb'"seq":\d+', b'"seq":' + seq.encode(), raw)


CASES: dict[str, tuple[str, Callable[[Line], bytes]]] = {
    "one bit of the signature flipped": ("bad-signature", lambda ln: _flip_signature(
        ln.envelope())),
    "signed by another key under the sender's key id": ("bad-signature", lambda ln: ln.envelope(
        signer=PartyKeys.generate())),
    "valid signature over a non-canonical encoding": ("malformed-envelope", lambda ln: ln.envelope(
        ).replace(b'","', b'", "', 1)),
    "unknown party": ("unknown-sender", lambda ln: ln.envelope(sender="ZZ-NONE")),
    "known party, unknown key id": ("unknown-key", lambda ln: ln.envelope(
        kid=PartyKeys.generate().public.key_id)),
    "addressed to another party": ("wrong-recipient", lambda ln: ln.envelope(
        recipient="CC-THREE")),
    "a day in the past": ("timestamp-out-of-window", lambda ln: ln.envelope(
        ts=time.time_ns() // 1_000_000 - 86_400_000)),
    "a day in the future": ("timestamp-out-of-window", lambda ln: ln.envelope(
        ts=time.time_ns() // 1_000_000 + 86_400_000)),
    "sequence beyond the reorder window": ("sequence-too-far-ahead", lambda ln: ln.envelope(
        seq=ln.next_seq + 5000)),
    "one byte over the size limit": ("oversize", lambda ln: ln.envelope(text="x" * 1_048_576)),
    "not JSON": ("malformed-envelope", lambda _ln: b"\xff\xfe not json"),
    "JSON but not an envelope": ("malformed-envelope", lambda _ln: b'{"hello":"world"}'),
    "integer beyond 2^53": ("malformed-envelope", lambda ln: _with_seq_text(
        ln.envelope(), str(2**60))),
    "sequence as a float": ("malformed-envelope", lambda ln: _with_seq_text(
        ln.envelope(), "1.0")),
    "negative sequence": ("malformed-envelope", lambda ln: _resign(ln.envelope(), ln.a_keys,
                                                                   seq=-1)),
    "unknown protocol version": ("unsupported-version", lambda ln: ln.envelope(v=2)),
    "encrypted to another key": ("undecryptable", lambda ln: ln.envelope(
        to_keys=PartyKeys.generate().public)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rejection_is_stable_stores_nothing_and_logs_once(line: Line, case: str) -> None:
    error_id, build = CASES[case]
    raw = build(line)
    before = line.stored()
    log_before = len(line.b.log_lines("rejected"))
    response = line.post(raw)
    assert 400 <= response.status_code < 500, response.text
    result = response.json()["results"][0]
    assert result["error"] == error_id, result
    assert result["message"]
    assert "receipt" not in result
    assert line.stored() == before
    wait_until(lambda: len(line.b.log_lines("rejected")) == log_before + 1, 10,
               what="one security-log line")
    assert error_id in line.b.log_lines("rejected")[-1]


def test_identical_retransmission_gets_the_original_receipt(line: Line) -> None:
    raw = line.envelope(text="once")
    first = line.accept(raw).json()["results"][0]
    before = line.stored()
    again = line.post(raw)
    assert again.status_code == 200
    second = again.json()["results"][0]
    assert second["duplicate"] is True
    assert first["duplicate"] is False
    assert second["receipt"] == first["receipt"]
    assert line.stored() == before


def test_reused_id_with_other_content_is_replayed_id(line: Line) -> None:
    raw = line.envelope(text="original")
    line.accept(raw)
    envelope_id = canonical.decode(raw)["id"]
    before = line.stored()
    response = line.post(line.envelope(id=envelope_id, text="changed"))
    assert response.status_code == 409
    assert response.json()["results"][0]["error"] == "replayed-id"
    assert line.stored() == before


def test_equivocation_is_rejected_and_both_envelopes_kept_as_evidence(line: Line) -> None:
    seq = line.next_seq
    first = line.envelope(seq=seq, text="first version")
    line.accept(first)
    before = line.stored()
    second = line.envelope(seq=seq, text="second version")
    response = line.post(second)
    assert response.status_code == 409
    assert response.json()["results"][0]["error"] == "sequence-reused"
    assert line.stored() == before
    rows = line.b.query("SELECT envelope, other_envelope FROM evidence WHERE kind = "
                        "'equivocation' ORDER BY id DESC")
    assert (bytes(rows[0].envelope), bytes(rows[0].other_envelope)) == (second, first)


def test_body_over_the_batch_limit_is_refused_before_parsing(line: Line) -> None:
    before = line.stored()
    response = line.post(b"x" * (8 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "oversize"
    assert line.stored() == before


def test_chunked_body_without_length_cannot_pass_the_limit(line: Line) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(9):
            yield b"x" * (1024 * 1024)

    response = httpx.post(line.b.url + ENVELOPES, content=chunks(), timeout=30.0)
    assert response.status_code == 413
    assert response.json()["error"] == "oversize"


def test_a_rejected_envelope_in_a_batch_does_not_stop_the_good_ones(line: Line) -> None:
    good = line.envelope(text="good one")
    bad = _flip_signature(line.envelope(seq=line.next_seq + 1))
    before = line.stored()
    response = line.post(good + b"\n" + bad)
    results = response.json()["results"]
    assert "receipt" in results[0]
    assert results[1]["error"] == "bad-signature"
    assert line.stored() == before + 1
    line.next_seq += 1
    # T20: the same rejected envelope through another path (alone, as a retry) stays rejected
    assert line.post(bad).json()["results"][0]["error"] == "bad-signature"


def test_resealed_message_is_the_same_message_with_the_same_receipt(line: Line) -> None:
    """A sender re-seals a message that waited long (new time, new encryption): the
    receiver stores it once and answers with the original receipt."""
    first = line.envelope(text="sealed twice")
    original = line.accept(first).json()["results"][0]
    envelope_id = canonical.decode(first)["id"]
    before = line.stored()
    resealed = line.envelope(id=envelope_id, seq=line.next_seq - 1, text="sealed twice",
                             ts=time.time_ns() // 1_000_000 + 1000)
    assert resealed != first
    response = line.post(resealed)
    assert response.status_code == 200
    again = response.json()["results"][0]
    assert again["duplicate"] is True
    assert again["receipt"] == original["receipt"]
    assert line.stored() == before
