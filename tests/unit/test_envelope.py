"""Envelopes: seal/open round trip, and every rejection with its stable id."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.errors import (
    BAD_SIGNATURE,
    MALFORMED,
    OVERSIZE,
    REJECTION_STATUS,
    TIMESTAMP_OUT_OF_WINDOW,
    UNDECRYPTABLE,
    UNKNOWN_KEY,
    UNKNOWN_SENDER,
    UNSUPPORTED_VERSION,
    WRONG_RECIPIENT,
    EnvelopeRejected,
)
from hotline.protocol import canonical, envelope, receipt
from hotline.protocol.envelope import (
    DEFAULT_SKEW_MS,
    Envelope,
    Header,
    new_envelope_id,
    open_envelope,
    seal,
    signed_bytes,
)
from hotline.protocol.keys import PartyKeys, PublicKeys, b64d, b64e
from hotline.protocol.signing import sign_object

SENDER = "US-JS"
RECIPIENT = "RU-GS"
NOW = 1_700_000_000_000
MAX_SAFE = 2**53 - 1

SENDER_KEYS = PartyKeys.generate()
RECIPIENT_KEYS = PartyKeys.generate()
OTHER_KEYS = PartyKeys.generate()  # a third party: another recipient or an impostor

KeyLookup = Callable[[str], dict[str, PublicKeys] | None]


def known_sender(party: str) -> dict[str, PublicKeys] | None:
    if party == SENDER:
        return {SENDER_KEYS.public.key_id: SENDER_KEYS.public}
    return None


def make_header(**overrides: Any) -> Header:
    fields: dict[str, Any] = {"id": new_envelope_id(), "sender": SENDER,
                              "recipient": RECIPIENT, "kid": SENDER_KEYS.public.key_id,
                              "seq": 1, "ts": NOW, "type": "message"}
    fields.update(overrides)
    return Header(**fields)


def make_wire(payload: dict[str, Any] | None = None, *, recipient_keys: PublicKeys | None = None,
              sender_keys: PartyKeys = SENDER_KEYS, **overrides: Any) -> bytes:
    return seal(make_header(**overrides), payload if payload is not None else {"text": "hi"},
                sender_keys, recipient_keys or RECIPIENT_KEYS.public)


def open_wire(data: bytes, *, lookup: KeyLookup = known_sender, **kwargs: Any) -> Envelope:
    kwargs.setdefault("now_ms", NOW)
    kwargs.setdefault("me", RECIPIENT)
    return open_envelope(data, my_keys=RECIPIENT_KEYS, sender_keys=lookup, **kwargs)


def assert_rejected(data: bytes, error_id: str, **kwargs: Any) -> None:
    with pytest.raises(EnvelopeRejected) as info:
        open_wire(data, **kwargs)
    assert info.value.error_id == error_id, str(info.value)
    assert info.value.status == REJECTION_STATUS[error_id]


def resign(obj: dict[str, Any], keys: PartyKeys = SENDER_KEYS) -> bytes:
    """Re-sign a (possibly altered) envelope object with ``keys`` and encode it."""
    body = {k: v for k, v in obj.items() if k != "sig"}
    return canonical.encode(sign_object(envelope.DOMAIN, body, keys))


def as_obj(data: bytes) -> dict[str, Any]:
    obj = canonical.decode(data)
    assert isinstance(obj, dict)
    return obj


@cache
def fixed_wire() -> bytes:
    """One envelope shared by the property tests that only mutate its bytes."""
    return make_wire({"text": "Привет, مرحبا", "n": 7}, seq=42)


# ---------------------------------------------------------------- round trip

_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=200)
_scripts = st.text(
    alphabet=st.characters(min_codepoint=0x0400, max_codepoint=0x04FF)  # Cyrillic
    | st.characters(min_codepoint=0x0600, max_codepoint=0x06FF)  # Arabic
    | st.sampled_from(" .,!?\n"),
    min_size=1, max_size=200)


@settings(max_examples=100)
@given(text=_text | _scripts,
       seq=st.integers(1, MAX_SAFE),
       skew=st.integers(-DEFAULT_SKEW_MS, DEFAULT_SKEW_MS),
       env_id=st.binary(min_size=16, max_size=16).map(bytes.hex),
       msg_type=st.from_regex(r"[a-z][a-z0-9.-]{0,63}", fullmatch=True))
def test_seal_open_round_trip(text: str, seq: int, skew: int, env_id: str,
                              msg_type: str) -> None:
    header = make_header(id=env_id, seq=seq, ts=NOW + skew, type=msg_type)
    payload = {"text": text, "seq_echo": seq, "tags": ["a", None, True]}
    data = seal(header, payload, SENDER_KEYS, RECIPIENT_KEYS.public)
    opened = open_wire(data)
    assert opened.header == header
    assert opened.payload == payload
    assert opened.raw == data


def test_fixed_examples_in_other_scripts() -> None:
    for text in ("Здравствуйте, нужна помощь", "مرحبا، أحتاج إلى المساعدة", "混合 text ✓"):
        opened = open_wire(make_wire({"text": text}))
        assert opened.payload == {"text": text}


def test_wire_form_is_canonical_with_exact_fields() -> None:
    data = fixed_wire()
    obj = as_obj(data)
    assert set(obj) == envelope.FIELDS
    assert canonical.encode(obj) == data
    assert obj["from"] == SENDER
    assert obj["to"] == RECIPIENT
    assert obj["seq"] == 42
    assert "Привет" not in data.decode()  # the payload travels encrypted only


def test_each_seal_uses_a_fresh_ephemeral_key() -> None:
    header = make_header()
    a = seal(header, {"t": "x"}, SENDER_KEYS, RECIPIENT_KEYS.public)
    b = seal(header, {"t": "x"}, SENDER_KEYS, RECIPIENT_KEYS.public)
    assert as_obj(a)["ct"] != as_obj(b)["ct"]


def test_sender_with_rotated_keys_opens_with_either_key() -> None:
    new_keys = PartyKeys.generate()

    def rotated(party: str) -> dict[str, PublicKeys] | None:
        if party != SENDER:
            return None
        return {SENDER_KEYS.public.key_id: SENDER_KEYS.public,
                new_keys.public.key_id: new_keys.public}

    data = make_wire(sender_keys=new_keys, kid=new_keys.public.key_id)
    assert open_wire(data, lookup=rotated).header.kid == new_keys.public.key_id
    assert open_wire(make_wire(), lookup=rotated).header.kid == SENDER_KEYS.public.key_id


def test_signed_bytes_are_what_the_signature_covers() -> None:
    data = fixed_wire()
    sig = b64d(as_obj(data)["sig"], expect_len=64)
    assert SENDER_KEYS.public.verify(sig, signed_bytes(data))
    assert signed_bytes(data).startswith(envelope.DOMAIN.encode() + b"\x00")


# ---------------------------------------------------------------- bit flips

def test_unmodified_shared_envelope_opens() -> None:
    assert open_wire(fixed_wire()).header.seq == 42


@settings(max_examples=200)
@given(st.data())
def test_any_single_bit_flip_is_rejected(data: st.DataObject) -> None:
    wire = fixed_wire()
    index = data.draw(st.integers(0, len(wire) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    flipped = bytearray(wire)
    flipped[index] ^= 1 << bit
    with pytest.raises(EnvelopeRejected):
        open_wire(bytes(flipped))


# ---------------------------------------------------------------- bad-signature

def test_signature_by_another_key_under_the_senders_kid() -> None:
    obj = as_obj(make_wire())
    forged = resign(obj, OTHER_KEYS)
    assert as_obj(forged)["kid"] == SENDER_KEYS.public.key_id
    assert_rejected(forged, BAD_SIGNATURE)


@settings(max_examples=50)
@given(bit=st.integers(0, 64 * 8 - 1))
def test_bit_flip_in_decoded_signature(bit: int) -> None:
    obj = as_obj(fixed_wire())
    sig = bytearray(b64d(obj["sig"], expect_len=64))
    sig[bit // 8] ^= 1 << (bit % 8)
    obj["sig"] = b64e(bytes(sig))
    assert_rejected(canonical.encode(obj), BAD_SIGNATURE)


@pytest.mark.parametrize(("field", "value"), [
    ("seq", 43), ("ts", NOW + 1), ("type", "other"), ("id", "0" * 32),
])
def test_changed_field_without_resigning(field: str, value: Any) -> None:
    obj = as_obj(fixed_wire())
    obj[field] = value
    assert_rejected(canonical.encode(obj), BAD_SIGNATURE)


def test_signature_from_another_domain_is_not_an_envelope_signature() -> None:
    obj = as_obj(make_wire())
    body = {k: v for k, v in obj.items() if k != "sig"}
    other_domain = sign_object(receipt.DOMAIN, body, SENDER_KEYS)
    assert_rejected(canonical.encode(other_domain), BAD_SIGNATURE)


# ---------------------------------------------------------------- routing and keys

def test_unknown_sender() -> None:
    assert_rejected(make_wire(), UNKNOWN_SENDER, lookup=lambda party: None)
    assert_rejected(make_wire(sender="XX-YY"), UNKNOWN_SENDER)


def test_unknown_key() -> None:
    def other_key_only(party: str) -> dict[str, PublicKeys] | None:
        return {OTHER_KEYS.public.key_id: OTHER_KEYS.public} if party == SENDER else None

    assert_rejected(make_wire(), UNKNOWN_KEY, lookup=other_key_only)
    assert_rejected(make_wire(kid="0123456789abcdef"), UNKNOWN_KEY)


def test_wrong_recipient() -> None:
    assert_rejected(make_wire(recipient="DE-XX"), WRONG_RECIPIENT)
    assert_rejected(make_wire(), WRONG_RECIPIENT, me="DE-XX")


@pytest.mark.parametrize("offset", [DEFAULT_SKEW_MS + 1, -(DEFAULT_SKEW_MS + 1), 10**9, -(10**9)])
def test_timestamp_out_of_window(offset: int) -> None:
    assert_rejected(make_wire(ts=NOW + offset), TIMESTAMP_OUT_OF_WINDOW)


@pytest.mark.parametrize("offset", [DEFAULT_SKEW_MS, -DEFAULT_SKEW_MS, 0])
def test_timestamp_at_window_edge_is_accepted(offset: int) -> None:
    assert open_wire(make_wire(ts=NOW + offset)).header.ts == NOW + offset


def test_custom_skew_is_honoured() -> None:
    data = make_wire(ts=NOW + 1001)
    assert_rejected(data, TIMESTAMP_OUT_OF_WINDOW, skew_ms=1000)
    assert open_wire(data, skew_ms=1001).header.ts == NOW + 1001


def test_oversize() -> None:
    data = fixed_wire()
    assert_rejected(data, OVERSIZE, max_bytes=len(data) - 1)
    assert open_wire(data, max_bytes=len(data)).raw == data


def test_oversize_is_checked_before_parsing() -> None:
    assert_rejected(b"x" * 101, OVERSIZE, max_bytes=100)


# ---------------------------------------------------------------- version and shape

@pytest.mark.parametrize("version", [2, 0, "1", True, None])
def test_unsupported_version(version: Any) -> None:
    obj = as_obj(make_wire())
    obj["v"] = version
    assert_rejected(resign(obj), UNSUPPORTED_VERSION)


@pytest.mark.parametrize("field", sorted(envelope.FIELDS))
def test_missing_field(field: str) -> None:
    obj = as_obj(make_wire())
    del obj[field]
    data = resign(obj) if field != "sig" else canonical.encode(obj)
    assert_rejected(data, MALFORMED)


@pytest.mark.parametrize(("field", "value"), [
    ("seq", 0),
    ("seq", -1),
    ("seq", "1"),
    ("seq", True),
    ("seq", None),
    ("ts", -1),
    ("ts", "1700000000000"),
    ("id", "xyz"),
    ("id", "0" * 31),
    ("id", "0" * 33),
    ("id", "A" * 32),
    ("id", 12345),
    ("from", "us-js"),
    ("from", "-US"),
    ("from", ""),
    ("to", "RU GS"),
    ("kid", "0123"),
    ("kid", "0123456789ABCDEF"),
    ("type", "Message"),
    ("type", ""),
    ("ct", 5),
    ("sig", ["x"]),
])
def test_malformed_field(field: str, value: Any) -> None:
    obj = as_obj(make_wire())
    obj[field] = value
    data = resign(obj) if field != "sig" else canonical.encode(obj)
    assert_rejected(data, MALFORMED)


def test_extra_field() -> None:
    obj = as_obj(make_wire())
    obj["note"] = "extra"
    assert_rejected(resign(obj), MALFORMED)


@pytest.mark.parametrize("data", [b"[]", b"1", b'"envelope"', b"null", b"{}"])
def test_not_an_envelope_object(data: bytes) -> None:
    assert_rejected(data, MALFORMED)


def test_ciphertext_that_is_not_base64url() -> None:
    obj = as_obj(make_wire())
    obj["ct"] = obj["ct"] + "="
    assert_rejected(resign(obj), MALFORMED)


def test_non_canonical_re_encoding_with_valid_signature() -> None:
    obj = as_obj(make_wire())
    for spaced in (json.dumps(obj, sort_keys=True, ensure_ascii=False).encode(),
                   json.dumps(obj, sort_keys=True, indent=1).encode(),
                   json.dumps(dict(reversed(list(obj.items()))), separators=(",", ":")).encode()):
        # The signature still verifies over the canonical form of the same object...
        assert as_obj(canonical.encode(json.loads(spaced)))["sig"] == obj["sig"]
        # ...but only the canonical bytes are accepted.
        assert_rejected(spaced, MALFORMED)


def test_payload_that_is_not_an_object() -> None:
    data = seal(make_header(), cast(Any, ["not", "an", "object"]), SENDER_KEYS,
                RECIPIENT_KEYS.public)
    assert_rejected(data, MALFORMED)


# ---------------------------------------------------------------- undecryptable

def test_encrypted_to_another_recipient_key() -> None:
    data = make_wire(recipient_keys=OTHER_KEYS.public)
    assert_rejected(data, UNDECRYPTABLE)


def test_ciphertext_moved_under_another_header() -> None:
    a = as_obj(make_wire({"text": "for envelope A"}, seq=1))
    b = as_obj(make_wire({"text": "for envelope B"}, seq=2))
    b["ct"] = a["ct"]
    assert_rejected(resign(b), UNDECRYPTABLE)


@pytest.mark.parametrize(("field", "value"), [("seq", 99), ("ts", NOW + 1), ("type", "other")])
def test_header_change_resigned_breaks_hpke_binding(field: str, value: Any) -> None:
    obj = as_obj(make_wire())
    obj[field] = value
    assert_rejected(resign(obj), UNDECRYPTABLE)


def test_bit_flip_in_ciphertext_resigned() -> None:
    obj = as_obj(make_wire())
    ct = bytearray(b64d(obj["ct"]))
    ct[-1] ^= 0x01
    obj["ct"] = b64e(bytes(ct))
    assert_rejected(resign(obj), UNDECRYPTABLE)


def test_truncated_ciphertext_resigned() -> None:
    obj = as_obj(make_wire())
    obj["ct"] = b64e(b64d(obj["ct"])[:10])
    assert_rejected(resign(obj), UNDECRYPTABLE)


# ---------------------------------------------------------------- known src bugs

def test_id_with_trailing_newline_is_malformed() -> None:
    assert_rejected(make_wire(id="0" * 32 + "\n"), MALFORMED)


def test_huge_integer_in_envelope_is_malformed() -> None:
    assert_rejected(b'{"seq":' + b"9" * 5000 + b"}", MALFORMED)
