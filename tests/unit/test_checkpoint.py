"""Checkpoints and cosignatures: signed round trips, strict fields, tamper detection."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.errors import HotlineError
from hotline.log.merkle import CompactRange, leaf_hash
from hotline.protocol import canonical
from hotline.protocol.checkpoint import (
    BAD_CHECKPOINT,
    BAD_COSIGNATURE,
    CHECKPOINT_DOMAIN,
    COSIGNATURE_DOMAIN,
    Checkpoint,
    make_checkpoint,
    make_cosignature,
    verify_checkpoint,
    verify_cosignature,
)
from hotline.protocol.keys import PartyKeys, b64d, b64e
from hotline.protocol.signing import sign_object
from hotline.protocol.tree import EMPTY_ROOT, MAX_TREE_SIZE

ORIGIN = "US-JS"
WITNESS = "RU-GS"
NOW = 1_700_000_000_000
MAX = 2**53 - 1

OWNER_KEYS = PartyKeys.generate()
WITNESS_KEYS = PartyKeys.generate()
OTHER_KEYS = PartyKeys.generate()


def _tree(size: int) -> bytes:
    compact = CompactRange()
    compact.extend(leaf_hash(b"entry %d" % i) for i in range(size))
    return compact.root()


ROOT = _tree(42)


def good_checkpoint(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"origin": ORIGIN, "size": 42, "root": ROOT, "at_ms": NOW,
                            "keys": OWNER_KEYS}
    args.update(overrides)
    return make_checkpoint(**args)


CHECKPOINT = verify_checkpoint(good_checkpoint(), OWNER_KEYS.public, ORIGIN)


def _resign(domain: str, obj: dict[str, Any], keys: PartyKeys) -> dict[str, Any]:
    """Sign an altered object properly, so only the field checks can refuse it."""
    body = {k: v for k, v in obj.items() if k != "sig"}
    return sign_object(domain, body, keys)


# ======================================================================= checkpoints

def test_checkpoint_round_trip() -> None:
    obj = good_checkpoint()
    assert set(obj) == {"v", "origin", "size", "root", "at", "kid", "sig"}
    assert obj["v"] == 1
    assert obj["kid"] == OWNER_KEYS.public.key_id
    assert b64d(obj["root"], expect_len=32) == ROOT
    # it survives the wire: canonical bytes decode to the same object
    wire = canonical.decode(canonical.encode(obj))
    got = verify_checkpoint(wire, OWNER_KEYS.public, ORIGIN)
    assert got == Checkpoint(origin=ORIGIN, size=42, root=ROOT, at=NOW,
                             kid=OWNER_KEYS.public.key_id, sig=obj["sig"])
    assert got.to_dict() == obj
    assert got.raw == canonical.encode(obj)


@pytest.mark.parametrize(("size", "at"), [(0, 0), (MAX_TREE_SIZE, MAX), (1, -MAX)])
def test_checkpoint_extreme_values_round_trip(size: int, at: int) -> None:
    root = EMPTY_ROOT if size == 0 else ROOT  # the empty tree has one root only
    obj = good_checkpoint(size=size, at_ms=at, root=root)
    got = verify_checkpoint(obj, OWNER_KEYS.public, ORIGIN)
    assert (got.size, got.at) == (size, at)


@pytest.mark.parametrize(("name", "value"), [
    ("size", 43), ("size", 41), ("root", b64e(_tree(43))), ("at", NOW + 1),
    ("origin", "US-JT"),
])
def test_checkpoint_with_a_changed_field_fails_its_signature(name: str, value: Any) -> None:
    obj = good_checkpoint()
    obj[name] = value
    with pytest.raises(HotlineError, match="signature does not verify") as exc:
        verify_checkpoint(obj, OWNER_KEYS.public, obj["origin"])
    assert exc.value.error_id == BAD_CHECKPOINT


@settings(max_examples=30)
@given(bit=st.integers(0, 64 * 8 - 1))
def test_checkpoint_with_a_flipped_signature_bit_fails(bit: int) -> None:
    obj = good_checkpoint()
    sig = bytearray(b64d(obj["sig"]))
    sig[bit // 8] ^= 1 << (bit % 8)
    obj["sig"] = b64e(bytes(sig))
    with pytest.raises(HotlineError, match="signature does not verify") as exc:
        verify_checkpoint(obj, OWNER_KEYS.public, ORIGIN)
    assert exc.value.error_id == BAD_CHECKPOINT


def test_checkpoint_for_another_origin_is_refused() -> None:
    with pytest.raises(HotlineError, match="for log 'US-JS', expected 'DE-XY'") as exc:
        verify_checkpoint(good_checkpoint(), OWNER_KEYS.public, "DE-XY")
    assert exc.value.error_id == BAD_CHECKPOINT


def test_checkpoint_checked_with_another_partys_key_names_the_key_ids() -> None:
    with pytest.raises(HotlineError, match=OTHER_KEYS.public.key_id) as exc:
        verify_checkpoint(good_checkpoint(), OTHER_KEYS.public, ORIGIN)
    assert exc.value.error_id == BAD_CHECKPOINT


def test_checkpoint_claiming_the_owners_key_id_but_signed_by_another_key_fails() -> None:
    forged = sign_object(CHECKPOINT_DOMAIN, {k: v for k, v in good_checkpoint().items()
                                             if k != "sig"}, OTHER_KEYS)
    assert forged["kid"] == OWNER_KEYS.public.key_id
    with pytest.raises(HotlineError, match="signature does not verify") as exc:
        verify_checkpoint(forged, OWNER_KEYS.public, ORIGIN)
    assert exc.value.error_id == BAD_CHECKPOINT


def test_a_signature_from_another_domain_is_refused() -> None:
    """The same fields signed as anything but a checkpoint do not make a checkpoint."""
    body = {k: v for k, v in good_checkpoint().items() if k != "sig"}
    obj = sign_object(COSIGNATURE_DOMAIN, body, OWNER_KEYS)
    with pytest.raises(HotlineError, match="signature does not verify"):
        verify_checkpoint(obj, OWNER_KEYS.public, ORIGIN)


BAD_FIELDS: list[tuple[str, Any, str]] = [
    ("v", 2, "unsupported version"),
    ("v", True, "unsupported version"),
    ("v", "1", "unsupported version"),
    ("size", -1, "'size' must be an integer from 0"),
    ("size", MAX + 1, "'size' must be an integer"),
    ("size", True, "'size' must be an integer"),
    ("size", 42.0, "'size' must be an integer"),
    ("size", "42", "'size' must be an integer"),
    ("at", -MAX - 1, "'at' must be an integer"),
    ("at", False, "'at' must be an integer"),
    ("at", None, "'at' must be an integer"),
    ("root", b64e(ROOT[:31]), "root must be 32 bytes, got 31"),
    ("root", b64e(ROOT + b"\x00"), "root must be 32 bytes, got 33"),
    ("root", b64e(ROOT) + "=", "not .*base64url"),
    ("root", ROOT.hex(), "root must be 32 bytes"),
    ("root", 7, "'root' must be a base64url string"),
    ("origin", "us-js", "not a party id"),
    ("origin", "", "not a party id"),
    ("origin", ["US-JS"], "not a party id"),
    ("kid", "ABCDEF0123456789", "'kid' is not 16 lowercase hex"),
    ("kid", 1, "'kid' is not 16 lowercase hex"),
    ("sig", "not base64!", "'sig'"),
    ("sig", b64e(b"\x00" * 63), "signature must be 64 bytes"),
    ("sig", None, "'sig' is not a string"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_FIELDS)
def test_checkpoint_with_a_malformed_field_is_refused(name: str, value: Any,
                                                      message: str) -> None:
    obj = good_checkpoint()
    obj[name] = value
    if name != "sig":
        # signed properly, so it is the field check, not the signature, that refuses it
        obj = _resign(CHECKPOINT_DOMAIN, obj, OWNER_KEYS) if _encodable(obj) else obj
    with pytest.raises(HotlineError, match=message) as exc:
        verify_checkpoint(obj, OWNER_KEYS.public, ORIGIN)
    assert exc.value.error_id == BAD_CHECKPOINT


def _encodable(obj: dict[str, Any]) -> bool:
    try:
        canonical.encode(obj)
    except HotlineError:
        return False
    return True


def test_checkpoint_with_missing_or_extra_fields_is_refused() -> None:
    obj = good_checkpoint()
    missing = {k: v for k, v in obj.items() if k != "at"}
    with pytest.raises(HotlineError, match=r"missing \['at'\]") as exc:
        verify_checkpoint(missing, OWNER_KEYS.public, ORIGIN)
    assert exc.value.error_id == BAD_CHECKPOINT
    extra = _resign(CHECKPOINT_DOMAIN, {**obj, "note": "x"}, OWNER_KEYS)
    with pytest.raises(HotlineError, match=r"unexpected.*note"):
        verify_checkpoint(extra, OWNER_KEYS.public, ORIGIN)
    non_string_key: dict[Any, Any] = {**obj, 1: 2}
    with pytest.raises(HotlineError, match="unexpected"):
        verify_checkpoint(non_string_key, OWNER_KEYS.public, ORIGIN)
    for not_an_object in (None, [obj], "checkpoint", canonical.encode(obj)):
        with pytest.raises(HotlineError, match="expected a JSON object") as exc:
            verify_checkpoint(not_an_object, OWNER_KEYS.public, ORIGIN)
        assert exc.value.error_id == BAD_CHECKPOINT


@pytest.mark.parametrize(("overrides", "message"), [
    ({"root": ROOT[:31]}, "root must be 32 bytes"),
    ({"size": -1}, "'size' must be an integer"),
    ({"size": 2**53}, "safe range"),
    ({"origin": "bad origin"}, "not a party id"),
    ({"at_ms": 1.5}, "floating|no canonical|'at'"),
])
def test_make_checkpoint_refuses_what_a_receiver_would_refuse(overrides: dict[str, Any],
                                                               message: str) -> None:
    with pytest.raises(HotlineError, match=message) as exc:
        good_checkpoint(**overrides)
    assert exc.value.error_id == BAD_CHECKPOINT


# ======================================================================= cosignatures

def good_cosignature(checkpoint: Checkpoint = CHECKPOINT, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"witness": WITNESS, "at_ms": NOW + 7, "keys": WITNESS_KEYS}
    args.update(overrides)
    return make_cosignature(checkpoint, **args)


def test_cosignature_round_trip() -> None:
    obj = good_cosignature()
    assert set(obj) == {"v", "witness", "origin", "size", "root", "at", "kid", "sig"}
    assert (obj["witness"], obj["origin"], obj["size"], obj["at"]) == (WITNESS, ORIGIN, 42,
                                                                      NOW + 7)
    assert obj["root"] == b64e(ROOT)
    assert obj["kid"] == WITNESS_KEYS.public.key_id
    wire = canonical.decode(canonical.encode(obj))
    verify_cosignature(wire, WITNESS_KEYS.public, CHECKPOINT)
    verify_cosignature(wire, WITNESS_KEYS.public, CHECKPOINT, expect_witness=WITNESS)


def test_cosignature_is_bound_to_the_checkpoint() -> None:
    """A cosignature vouches for one (origin, size, root): no other checkpoint passes."""
    obj = good_cosignature()
    others = [
        verify_checkpoint(good_checkpoint(size=43, root=_tree(43)), OWNER_KEYS.public,
                          ORIGIN),
        verify_checkpoint(good_checkpoint(size=43), OWNER_KEYS.public, ORIGIN),
        verify_checkpoint(good_checkpoint(root=_tree(43)), OWNER_KEYS.public, ORIGIN),
        verify_checkpoint(good_checkpoint(origin="DE-XY"), OWNER_KEYS.public, "DE-XY"),
    ]
    for other in others:
        with pytest.raises(HotlineError, match="not for the checkpoint") as exc:
            verify_cosignature(obj, WITNESS_KEYS.public, other)
        assert exc.value.error_id == BAD_COSIGNATURE
    # the owner's own time and signature are not what the witness vouches for
    later = verify_checkpoint(good_checkpoint(at_ms=NOW + 999), OWNER_KEYS.public, ORIGIN)
    verify_cosignature(obj, WITNESS_KEYS.public, later)


@pytest.mark.parametrize(("name", "value"), [
    ("size", 43), ("root", b64e(_tree(43))), ("origin", "DE-XY"), ("witness", "FR-AB"),
    ("at", NOW + 8),
])
def test_cosignature_with_a_changed_field_fails(name: str, value: Any) -> None:
    obj = good_cosignature()
    obj[name] = value
    with pytest.raises(HotlineError) as exc:
        verify_cosignature(obj, WITNESS_KEYS.public, CHECKPOINT)
    assert exc.value.error_id == BAD_COSIGNATURE
    # and even against a checkpoint that matches the changed values, the signature fails
    if name in ("origin", "size", "root"):
        claimed = Checkpoint(origin=obj["origin"], size=obj["size"],
                             root=b64d(obj["root"]), at=NOW, kid=CHECKPOINT.kid,
                             sig=CHECKPOINT.sig)
        with pytest.raises(HotlineError, match="signature does not verify"):
            verify_cosignature(obj, WITNESS_KEYS.public, claimed)


def test_cosignature_by_another_witness_or_key_is_refused() -> None:
    obj = good_cosignature()
    with pytest.raises(HotlineError, match="it is by 'RU-GS', expected 'FR-AB'") as exc:
        verify_cosignature(obj, WITNESS_KEYS.public, CHECKPOINT, expect_witness="FR-AB")
    assert exc.value.error_id == BAD_COSIGNATURE
    with pytest.raises(HotlineError, match=OTHER_KEYS.public.key_id):
        verify_cosignature(obj, OTHER_KEYS.public, CHECKPOINT)
    forged = sign_object(COSIGNATURE_DOMAIN, {k: v for k, v in obj.items() if k != "sig"},
                         OTHER_KEYS)
    with pytest.raises(HotlineError, match="signature does not verify"):
        verify_cosignature(forged, WITNESS_KEYS.public, CHECKPOINT)


def test_a_checkpoint_signature_is_no_cosignature() -> None:
    body = {k: v for k, v in good_cosignature().items() if k != "sig"}
    obj = sign_object(CHECKPOINT_DOMAIN, body, WITNESS_KEYS)
    with pytest.raises(HotlineError, match="signature does not verify"):
        verify_cosignature(obj, WITNESS_KEYS.public, CHECKPOINT)


def test_a_log_cannot_witness_itself() -> None:
    with pytest.raises(HotlineError, match="cannot witness its own log") as exc:
        good_cosignature(witness=ORIGIN, keys=OWNER_KEYS)
    assert exc.value.error_id == BAD_COSIGNATURE
    body = {k: v for k, v in good_cosignature().items() if k != "sig"}
    self_signed = sign_object(COSIGNATURE_DOMAIN, {**body, "witness": ORIGIN,
                                                   "kid": OWNER_KEYS.public.key_id},
                              OWNER_KEYS)
    with pytest.raises(HotlineError, match="cannot witness its own log"):
        verify_cosignature(self_signed, OWNER_KEYS.public, CHECKPOINT)


@pytest.mark.parametrize(("name", "value", "message"), [
    *BAD_FIELDS,
    ("witness", "ru-gs", "not a party id"),
    ("witness", None, "not a party id"),
])
def test_cosignature_with_a_malformed_field_is_refused(name: str, value: Any,
                                                       message: str) -> None:
    obj = good_cosignature()
    obj[name] = value
    if name != "sig" and _encodable(obj):
        obj = _resign(COSIGNATURE_DOMAIN, obj, WITNESS_KEYS)
    # a checkpoint that matches whatever the cosignature names, so only fields refuse it
    with pytest.raises(HotlineError, match=message) as exc:
        verify_cosignature(obj, WITNESS_KEYS.public, CHECKPOINT)
    assert exc.value.error_id == BAD_COSIGNATURE


def test_cosignature_with_missing_or_extra_fields_is_refused() -> None:
    obj = good_cosignature()
    for broken in ({k: v for k, v in obj.items() if k != "witness"}, {**obj, "note": "x"},
                   None, [obj]):
        with pytest.raises(HotlineError) as exc:
            verify_cosignature(broken, WITNESS_KEYS.public, CHECKPOINT)
        assert exc.value.error_id == BAD_COSIGNATURE


# ======================================================================= hostile input

_values: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=True),
    st.text(max_size=70), st.lists(st.integers(), max_size=2),
    st.sampled_from([1, 42, ORIGIN, WITNESS, NOW, b64e(ROOT)]))


@settings(max_examples=300)
@given(name=st.sampled_from(["v", "origin", "size", "root", "at", "kid", "sig", "witness"]),
       value=_values)
def test_any_changed_field_value_is_refused_with_our_own_error(name: str, value: Any) -> None:
    """Whatever a peer puts in a field, the answer is our own error id, never a crash;
    and since every field is signed or checked, any change at all is refused."""
    checkpoint = good_checkpoint()
    cosignature = good_cosignature()
    if name != "witness":
        original = checkpoint[name]
        checkpoint[name] = value
        if type(value) is type(original) and value == original:
            verify_checkpoint(checkpoint, OWNER_KEYS.public, ORIGIN)
        else:
            with pytest.raises(HotlineError) as exc:
                verify_checkpoint(checkpoint, OWNER_KEYS.public, ORIGIN)
            assert exc.value.error_id == BAD_CHECKPOINT
    original = cosignature[name]
    cosignature[name] = value
    if type(value) is type(original) and value == original:
        verify_cosignature(cosignature, WITNESS_KEYS.public, CHECKPOINT)
    else:
        with pytest.raises(HotlineError) as exc:
            verify_cosignature(cosignature, WITNESS_KEYS.public, CHECKPOINT)
        assert exc.value.error_id == BAD_COSIGNATURE
