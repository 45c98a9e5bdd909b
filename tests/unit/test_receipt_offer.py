"""Delivery receipts and link offers: signed round trips and tamper detection."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.errors import BAD_SIGNATURE, MALFORMED, EnvelopeRejected, LinkError
from hotline.protocol import canonical, offer, receipt
from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.keys import PartyKeys, b64d, b64e, safety_number
from hotline.protocol.offer import make_offer, parse_offer
from hotline.protocol.receipt import (
    envelope_digest,
    make_receipt,
    message_digest,
    verify_receipt,
)
from hotline.protocol.signing import sign_object

SENDER = "US-JS"
RECIPIENT = "RU-GS"
NOW = 1_700_000_000_000

SENDER_KEYS = PartyKeys.generate()
RECIPIENT_KEYS = PartyKeys.generate()
OTHER_KEYS = PartyKeys.generate()

SAFETY_RE = re.compile(r"\A\d{5}(?: \d{5}){11}\Z")


def _envelope(seq: int) -> tuple[str, bytes]:
    env_id = new_envelope_id()
    header = Header(id=env_id, sender=SENDER, recipient=RECIPIENT,
                    kid=SENDER_KEYS.public.key_id, seq=seq, ts=NOW, type="message")
    return env_id, seal(header, {"text": f"message {seq}"}, SENDER_KEYS, RECIPIENT_KEYS.public)


ENV_ID, RAW_ENV = _envelope(7)
SEQ = 7
DIGEST = message_digest(envelope_id=ENV_ID, sender=SENDER, recipient=RECIPIENT, seq=SEQ,
                        type_="message", payload={"text": f"message {SEQ}"})


def _obj(data: bytes) -> dict[str, Any]:
    obj = canonical.decode(data)
    assert isinstance(obj, dict)
    return obj


# ======================================================================= receipts

def make_good_receipt(keys: PartyKeys = RECIPIENT_KEYS) -> bytes:
    return make_receipt(envelope_id=ENV_ID, signer=RECIPIENT, sender=SENDER, seq=SEQ,
                        digest=DIGEST, at_ms=NOW + 5, keys=keys)


def verify(data: bytes, **overrides: Any) -> receipt.Receipt:
    kwargs: dict[str, Any] = {"signer": RECIPIENT_KEYS.public, "signer_party": RECIPIENT,
                              "envelope_id": ENV_ID, "sender": SENDER, "seq": SEQ,
                              "digest": DIGEST}
    kwargs.update(overrides)
    return verify_receipt(data, **kwargs)


def test_receipt_round_trip() -> None:
    data = make_good_receipt()
    got = verify(data)
    assert got.envelope_id == ENV_ID
    assert got.signer == RECIPIENT
    assert got.sender == SENDER
    assert got.seq == SEQ
    assert got.at == NOW + 5
    assert got.digest == DIGEST
    assert got.raw == data
    assert set(_obj(data)) == receipt.FIELDS


def test_envelope_digest_is_sha256_of_exact_bytes() -> None:
    digest = b64d(envelope_digest(RAW_ENV), expect_len=32)
    assert len(digest) == 32
    assert envelope_digest(RAW_ENV) != envelope_digest(RAW_ENV + b" ")


@pytest.mark.parametrize(("field", "value"), [
    ("envelope_id", "f" * 32), ("sender", "XX-YY"), ("recipient", "XX-YY"), ("seq", SEQ + 1),
    ("type_", "other"), ("payload", {"text": "message 8"}),
])
def test_message_digest_covers_every_part_of_the_message(field: str, value: Any) -> None:
    parts: dict[str, Any] = {"envelope_id": ENV_ID, "sender": SENDER, "recipient": RECIPIENT,
                             "seq": SEQ, "type_": "message",
                             "payload": {"text": f"message {SEQ}"}}
    assert message_digest(**parts) == DIGEST
    parts[field] = value
    assert message_digest(**parts) != DIGEST


@pytest.mark.parametrize(("field", "value", "error_id"), [
    ("v", 2, MALFORMED),
    ("type", "link-offer", MALFORMED),
    ("id", "0" * 32, MALFORMED),
    ("from", "XX-YY", MALFORMED),
    ("to", "XX-YY", MALFORMED),
    ("kid", "0123456789abcdef", MALFORMED),
    ("seq", SEQ + 1, MALFORMED),
    ("digest", b64e(b"\x00" * 32), MALFORMED),
    ("at", NOW + 6, BAD_SIGNATURE),
    ("at", "later", MALFORMED),
])
def test_tampered_receipt_field(field: str, value: Any, error_id: str) -> None:
    obj = _obj(make_good_receipt())
    assert obj[field] != value
    obj[field] = value
    with pytest.raises(EnvelopeRejected) as info:
        verify(canonical.encode(obj))
    assert info.value.error_id == error_id


@settings(max_examples=30)
@given(bit=st.integers(0, 64 * 8 - 1))
def test_tampered_receipt_signature(bit: int) -> None:
    obj = _obj(make_good_receipt())
    sig = bytearray(b64d(obj["sig"], expect_len=64))
    sig[bit // 8] ^= 1 << (bit % 8)
    obj["sig"] = b64e(bytes(sig))
    with pytest.raises(EnvelopeRejected) as info:
        verify(canonical.encode(obj))
    assert info.value.error_id == BAD_SIGNATURE


@pytest.mark.parametrize("field", sorted(receipt.FIELDS))
def test_receipt_missing_field(field: str) -> None:
    obj = _obj(make_good_receipt())
    del obj[field]
    with pytest.raises(EnvelopeRejected) as info:
        verify(canonical.encode(obj))
    assert info.value.error_id == MALFORMED


def test_receipt_extra_field() -> None:
    obj = _obj(make_good_receipt())
    obj["note"] = "x"
    with pytest.raises(EnvelopeRejected):
        verify(canonical.encode(obj))


def test_receipt_from_wrong_signer_key() -> None:
    # Signed by another key (and naming it): the kid does not match the expected signer.
    with pytest.raises(EnvelopeRejected):
        verify(make_good_receipt(keys=OTHER_KEYS))
    # Verified against the wrong public key.
    with pytest.raises(EnvelopeRejected):
        verify(make_good_receipt(), signer=OTHER_KEYS.public)


def test_receipt_forged_under_the_real_kid() -> None:
    obj = _obj(make_good_receipt(keys=OTHER_KEYS))
    obj["kid"] = RECIPIENT_KEYS.public.key_id
    forged = canonical.encode(
        sign_object(receipt.DOMAIN, {k: v for k, v in obj.items() if k != "sig"}, OTHER_KEYS))
    with pytest.raises(EnvelopeRejected) as info:
        verify(forged)
    assert info.value.error_id == BAD_SIGNATURE


def test_receipt_for_a_different_message() -> None:
    other = message_digest(envelope_id=ENV_ID, sender=SENDER, recipient=RECIPIENT, seq=SEQ,
                           type_="message", payload={"text": "something else"})
    with pytest.raises(EnvelopeRejected):
        verify(make_good_receipt(), digest=other)


@pytest.mark.parametrize(("name", "value"), [
    ("envelope_id", "f" * 32), ("seq", SEQ + 1), ("sender", "XX-YY"), ("signer_party", "XX"),
])
def test_receipt_checked_against_wrong_expectation(name: str, value: Any) -> None:
    with pytest.raises(EnvelopeRejected):
        verify(make_good_receipt(), **{name: value})


def test_receipt_signature_does_not_cross_domains() -> None:
    obj = _obj(make_good_receipt())
    body = {k: v for k, v in obj.items() if k != "sig"}
    wrong_domain = canonical.encode(sign_object(offer.DOMAIN, body, RECIPIENT_KEYS))
    with pytest.raises(EnvelopeRejected) as info:
        verify(wrong_domain)
    assert info.value.error_id == BAD_SIGNATURE


# ======================================================================= offers

PARTY = "US-JS"
NAME = "Джейн — Crisis Line"
ENDPOINTS = ["https://hotline.example.org/", "http://198.51.100.7:7100"]


def good_offer(keys: PartyKeys = SENDER_KEYS, **overrides: Any) -> bytes:
    kwargs: dict[str, Any] = {"party": PARTY, "name": NAME, "keys": keys,
                              "endpoints": list(ENDPOINTS), "at_ms": NOW}
    kwargs.update(overrides)
    return make_offer(**kwargs)


def resigned_offer(obj: dict[str, Any], keys: PartyKeys = SENDER_KEYS) -> bytes:
    body = {k: v for k, v in obj.items() if k != "sig"}
    return canonical.encode(sign_object(offer.DOMAIN, body, keys))


def assert_bad_offer(data: bytes) -> None:
    with pytest.raises(LinkError) as info:
        parse_offer(data)
    assert info.value.error_id == "bad-offer"
    assert info.value.hint


def test_offer_round_trip() -> None:
    data = good_offer()
    parsed = parse_offer(data)
    assert parsed.party == PARTY
    assert parsed.name == NAME
    assert parsed.at == NOW
    assert parsed.endpoints == ("https://hotline.example.org", "http://198.51.100.7:7100")
    assert parsed.keys.sign_bytes == SENDER_KEYS.public.sign_bytes
    assert parsed.keys.enc_bytes == SENDER_KEYS.public.enc_bytes
    assert parsed.keys.key_id == SENDER_KEYS.public.key_id
    assert parsed.raw == data


def test_offer_pasted_with_surrounding_whitespace() -> None:
    data = good_offer()
    assert parse_offer(b"\n  " + data + b"\r\n").raw == data


def test_safety_number_format_and_stability() -> None:
    parsed = parse_offer(good_offer())
    number = parsed.safety_number
    assert SAFETY_RE.match(number), number
    assert parse_offer(good_offer(at_ms=NOW + 1)).safety_number == number
    assert number == safety_number(PARTY, SENDER_KEYS.public.sign_bytes,
                                   SENDER_KEYS.public.enc_bytes)
    same_keys = PartyKeys.from_raw(*SENDER_KEYS.raw())
    assert parse_offer(good_offer(keys=same_keys)).safety_number == number


def test_safety_number_differs_for_different_keys_or_party() -> None:
    number = parse_offer(good_offer()).safety_number
    other = parse_offer(good_offer(keys=OTHER_KEYS)).safety_number
    assert SAFETY_RE.match(other)
    assert other != number
    assert parse_offer(good_offer(party="US-XX")).safety_number != number
    pub, oth = SENDER_KEYS.public, OTHER_KEYS.public
    # Swapping in only one of the two keys changes the number too.
    assert safety_number(PARTY, pub.sign_bytes, oth.enc_bytes) != number
    assert safety_number(PARTY, oth.sign_bytes, pub.enc_bytes) != number


@pytest.mark.parametrize(("field", "value"), [
    ("endpoints", ["https://evil.example.net"]),
    ("endpoints", ["https://hotline.example.org"]),
    ("name", "Someone Else"),
    ("party", "US-XX"),
    ("at", NOW + 1),
    # ids of their own: a random key in a test id differs between test processes
    pytest.param("enc", b64e(OTHER_KEYS.public.enc_bytes), id="enc-other-key"),
    pytest.param("sign", b64e(OTHER_KEYS.public.sign_bytes), id="sign-other-key"),
])
def test_altered_offer_keeping_signature(field: str, value: Any) -> None:
    obj = _obj(good_offer())
    assert obj[field] != value
    obj[field] = value
    assert_bad_offer(canonical.encode(obj))


@settings(max_examples=30)
@given(bit=st.integers(0, 64 * 8 - 1))
def test_offer_with_flipped_signature_bit(bit: int) -> None:
    obj = _obj(good_offer())
    sig = bytearray(b64d(obj["sig"], expect_len=64))
    sig[bit // 8] ^= 1 << (bit % 8)
    obj["sig"] = b64e(bytes(sig))
    assert_bad_offer(canonical.encode(obj))


def test_offer_signed_by_a_key_other_than_the_announced_one() -> None:
    obj = _obj(good_offer())
    assert_bad_offer(resigned_offer(obj, OTHER_KEYS))


@pytest.mark.parametrize(("field", "value"), [
    ("v", 2),
    ("type", "receipt"),
    ("party", "us-js"),
    ("party", 5),
    ("name", ""),
    ("name", "bell\x07"),
    ("name", "x" * 121),
    ("endpoints", []),
    ("endpoints", "https://hotline.example.org"),
    ("endpoints", [f"https://h{i}.example.org" for i in range(9)]),
    ("endpoints", [5]),
    ("at", "now"),
    ("sign", "not-a-key"),
    ("enc", b64e(b"\x00" * 31)),
])
def test_offer_with_bad_shape_even_if_self_signed(field: str, value: Any) -> None:
    obj = _obj(good_offer())
    obj[field] = value
    assert_bad_offer(resigned_offer(obj))


@pytest.mark.parametrize("field", sorted(offer.FIELDS))
def test_offer_missing_field(field: str) -> None:
    obj = _obj(good_offer())
    del obj[field]
    assert_bad_offer(resigned_offer(obj) if field != "sig" else canonical.encode(obj))


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b'{"v":1}', b"\xff\xfe",
])
def test_offer_garbage(data: bytes) -> None:
    assert_bad_offer(data)


def test_offer_non_canonical_encoding() -> None:
    obj = _obj(good_offer())
    assert_bad_offer(json.dumps(obj, sort_keys=True, indent=2).encode())


@pytest.mark.parametrize("endpoint", [
    "ftp://hotline.example.org",
    "ws://hotline.example.org",
    "198.51.100.7:7100",
    "hotline.example.org",
    "http://",
    "https:///path",
    "http://h.example.org/?q=1",
    "http://h.example.org/#frag",
    "",
])
def test_make_offer_rejects_bad_endpoint(endpoint: str) -> None:
    with pytest.raises(LinkError) as info:
        good_offer(endpoints=["https://ok.example.org", endpoint])
    assert info.value.error_id == "bad-endpoint"


# ---------------------------------------------------------------- known src bugs

@pytest.mark.parametrize("endpoint", ["http://[::1", "http://[not-an-ip]/"])
def test_make_offer_rejects_unparsable_url(endpoint: str) -> None:
    with pytest.raises(LinkError) as info:
        good_offer(endpoints=[endpoint])
    assert info.value.error_id == "bad-endpoint"


def test_parse_offer_with_unparsable_endpoint_is_a_link_error() -> None:
    obj = _obj(good_offer())
    obj["endpoints"] = ["http://[::1"]
    with pytest.raises(LinkError):
        parse_offer(resigned_offer(obj))


@pytest.mark.parametrize(("field", "value"), [("name", "Jane\n"), ("party", "US-JS\n")])
def test_offer_trailing_newline_in_name_or_party(field: str, value: str) -> None:
    obj = _obj(good_offer())
    obj[field] = value
    assert_bad_offer(resigned_offer(obj))


def test_a_call_signals_delivery_budget_is_not_part_of_the_message() -> None:
    """A re-seal renews ``budget_ms``; every sealing must earn the same receipt."""
    from hotline.protocol.receipt import message_digest

    def digest(payload: dict[str, object], type_: str = "call.place") -> str:
        return message_digest(envelope_id="a" * 32, sender="AA-ONE", recipient="BB-TWO",
                              seq=1, type_=type_, payload=payload)
    base = {"call": "c" * 32, "budget_ms": 30_000}
    assert digest(base) == digest({**base, "budget_ms": 0})
    assert digest(base) != digest({**base, "call": "d" * 32})
    # only for the signal that carries it: in other payloads it is content
    assert digest(base, "message") != digest({**base, "budget_ms": 0}, "message")
