"""Canonical JSON: exactly one accepted byte encoding per value."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.errors import MALFORMED, EnvelopeRejected
from hotline.protocol import canonical

MAX_SAFE = 2**53 - 1

# Strings the encoding can carry: any code point except NUL and lone surrogates.
_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_text = st.text(alphabet=_chars, max_size=20)
_scalars = st.none() | st.booleans() | st.integers(-MAX_SAFE, MAX_SAFE) | _text


def _nested(max_depth: int) -> st.SearchStrategy[Any]:
    """Canonical values nested at most ``max_depth`` container levels deep."""
    if max_depth == 0:
        return _scalars
    inner = _nested(max_depth - 1)
    return _scalars | st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4)


canonical_values = _nested(6)


def _same(a: Any, b: Any) -> bool:
    """Structural equality that does not confuse True with 1 or 0 with False."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _assert_malformed(data: bytes) -> None:
    with pytest.raises(EnvelopeRejected) as info:
        canonical.decode(data)
    assert info.value.error_id == MALFORMED
    assert info.value.status == 400


@settings(max_examples=300)
@given(canonical_values)
def test_round_trip(value: Any) -> None:
    data = canonical.encode(value)
    decoded = canonical.decode(data)
    assert _same(decoded, value)
    assert canonical.encode(decoded) == data


@settings(max_examples=100)
@given(st.dictionaries(_text, _scalars, min_size=2, max_size=6))
def test_encoding_is_independent_of_key_insertion_order(value: dict[str, Any]) -> None:
    reversed_value = dict(reversed(list(value.items())))
    assert canonical.encode(value) == canonical.encode(reversed_value)


def test_known_encoding() -> None:
    value = {"b": [1, True, None], "a": "é\n", "c": {"z": -5, "y": ""}}
    expected = '{"a":"é\\n","b":[1,true,null],"c":{"y":"","z":-5}}'.encode()
    assert canonical.encode(value) == expected
    assert canonical.decode(expected) == value


def test_non_ascii_is_raw_utf8_not_escaped() -> None:
    assert canonical.encode("Привет مرحبا") == '"Привет مرحبا"'.encode()
    # The \u-escaped spelling of the same string is a second encoding, so it is refused.
    _assert_malformed(b'"\\u041f"')


def test_safe_integer_bounds_accepted() -> None:
    for n in (MAX_SAFE, -MAX_SAFE, 0):
        assert canonical.decode(str(n).encode()) == n


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'\xef\xbb\xbf{"a":1}', "byte-order mark"),
        (b'{"a":"\xff"}', "invalid UTF-8 byte"),
        (b'"\xc3"', "truncated UTF-8 sequence"),
        (b'"\xed\xa0\x80"', "UTF-8 encoded surrogate"),
        (b'"\\ud800"', "lone surrogate escape"),
        (b'"\\udc00x"', "lone low surrogate escape"),
        (b'"\\u0000"', "NUL escape"),
        (b'{"a\\u0000":1}', "NUL in key"),
        (b"NaN", "NaN"),
        (b"Infinity", "Infinity"),
        (b"-Infinity", "-Infinity"),
        (b"[NaN]", "NaN inside an array"),
        (b"1.5", "float"),
        (b"1.0", "integral float"),
        (b"1e3", "exponent"),
        (b'{"a":0.1}', "float value"),
        (str(2**53).encode(), "integer 2^53"),
        (str(-(2**53)).encode(), "integer -2^53"),
        (str(2**64).encode(), "integer 2^64"),
        (b'{"a":1,"a":1}', "duplicate key, same value"),
        (b'{"a":1,"a":2}', "duplicate key"),
        (b'{"b":1,"a":2}', "keys not sorted"),
        (b'{"a": 1}', "space after colon"),
        (b'{"a":1, "b":2}', "space after comma"),
        (b' {"a":1}', "leading space"),
        (b'{"a":1}\n', "trailing newline"),
        (b"[1,\t2]", "tab"),
        (b"-0", "negative zero"),
        (b"01", "leading zero"),
        (b'"\\/"', "unnecessary escape"),
        (b"", "empty input"),
        (b"{", "truncated"),
        (b"[" * 10000, "10000 open brackets"),
        (b"[" * 10000 + b"]" * 10000, "10000 nested arrays"),
        (b"[" * 12 + b"]" * 12, "nested beyond MAX_DEPTH"),
    ],
)
def test_rejections(data: bytes, why: str) -> None:
    _assert_malformed(data)


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        float("nan"),
        float("inf"),
        2**53,
        -(2**53),
        "a\x00b",
        {"k": "\ud800"},
        {1: "non-string key"},
        b"bytes",
        (1, 2),
        {"a": {1, 2}},
    ],
)
def test_encode_refuses_values_without_canonical_encoding(value: Any) -> None:
    with pytest.raises(EnvelopeRejected) as info:
        canonical.encode(value)
    assert info.value.error_id == MALFORMED


def test_depth_limit_boundary() -> None:
    deepest_ok: Any = []
    for _ in range(canonical.MAX_DEPTH):
        deepest_ok = [deepest_ok]
    data = canonical.encode(deepest_ok)
    assert canonical.decode(data) == deepest_ok
    with pytest.raises(EnvelopeRejected) as info:
        canonical.encode([deepest_ok])
    assert info.value.error_id == MALFORMED
    _assert_malformed(b"[" + data + b"]")


@settings(max_examples=100)
@given(st.dictionaries(_text, _scalars, min_size=1, max_size=5))
def test_spaced_re_encoding_is_rejected(value: dict[str, Any]) -> None:
    # json.dumps' default separators put a space after ':' (the dict is never empty).
    spaced = json.dumps(value, sort_keys=True, ensure_ascii=False).encode()
    assert spaced != canonical.encode(value)
    _assert_malformed(spaced)


def test_huge_integer_literal_is_malformed() -> None:
    _assert_malformed(b'{"a":' + b"1" * 5000 + b"}")


def _reference_problem(value: Any, depth: int = 0) -> str | None:
    """The rules of the module docstring as a plain recursive walk, one call per value:
    the first problem found (depth-first, keys before their values), or None."""
    if depth > canonical.MAX_DEPTH:
        return "deeper"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if -MAX_SAFE <= value <= MAX_SAFE else "safe range"
    if isinstance(value, str):
        return "NUL" if "\x00" in value else None
    if isinstance(value, list):
        return next((p for item in value if (p := _reference_problem(item, depth + 1))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "not a string"
            if problem := (_reference_problem(key, depth + 1)
                           or _reference_problem(item, depth + 1)):
                return problem
        return None
    return "no canonical encoding"


# Values that break each rule somewhere inside, at any depth up to past the limit.
_bad_scalars = (_scalars | st.just("a\x00b") | st.integers(MAX_SAFE + 1, MAX_SAFE + 9)
                | st.integers(-MAX_SAFE - 9, -MAX_SAFE - 1) | st.floats(allow_nan=False))
_any_values = st.recursive(
    _bad_scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_text | st.just("k\x00") | st.integers(0, 3), inner, max_size=3),
    max_leaves=40)


@settings(max_examples=400)
@given(_any_values, st.integers(0, canonical.MAX_DEPTH + 1))
def test_encode_refuses_exactly_what_the_rules_refuse(value: Any, wrap: int) -> None:
    """The checking walk (which checks plain strings and integers of a container in
    place, for speed) refuses the same values, for the same first reason, as the plain
    one-call-per-value walk of the rules."""
    for _ in range(wrap):
        value = [value]
    expected = _reference_problem(value)
    if expected is None:
        canonical.encode(value)  # raises nothing
        return
    with pytest.raises(EnvelopeRejected) as info:
        canonical.encode(value)
    assert info.value.error_id == MALFORMED
    assert expected in str(info.value), (expected, str(info.value))
