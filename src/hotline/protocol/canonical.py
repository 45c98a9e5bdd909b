"""Canonical JSON: the one byte encoding that is signed and accepted.

A signature must cover exactly one encoding of a value, or an attacker can present a
valid signature over a different encoding of the same data (THREATS T1). So the decoder
accepts only bytes that re-encode to themselves: UTF-8 without a BOM, keys sorted, no
insignificant white space, no duplicate keys, no floats, NaN or Infinity, integers
within +-(2^53 - 1), and no NUL or lone surrogates in strings.
"""

from __future__ import annotations

import json
from typing import Any

from hotline.errors import MALFORMED, rejected

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 8

JSONValue = Any


# One encoder for the process: json.dumps with options builds a new one on every call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def _check_value(value: JSONValue, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise rejected(MALFORMED, f"value nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise rejected(MALFORMED, "integer outside the safe range +-(2^53 - 1)")
        return
    if isinstance(value, str):
        if "\x00" in value:
            raise rejected(MALFORMED, "string contains NUL")
        return
    # Containers check their plain strings and integers in place (exactly what the
    # recursive call would do, in the same order): nearly every value of an envelope is
    # one, and a call per value was most of this function's cost on the hot path.
    inner = depth + 1
    if isinstance(value, list):
        if value and inner > MAX_DEPTH:
            raise rejected(MALFORMED, f"value nested deeper than {MAX_DEPTH} levels")
        for item in value:
            kind = type(item)
            if kind is str:
                if "\x00" in item:
                    raise rejected(MALFORMED, "string contains NUL")
            elif kind is int:
                if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    raise rejected(MALFORMED, "integer outside the safe range +-(2^53 - 1)")
            else:
                _check_value(item, inner)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise rejected(MALFORMED, "object key is not a string")
            if inner > MAX_DEPTH:
                raise rejected(MALFORMED, f"value nested deeper than {MAX_DEPTH} levels")
            if "\x00" in key:
                raise rejected(MALFORMED, "string contains NUL")
            kind = type(item)
            if kind is str:
                if "\x00" in item:
                    raise rejected(MALFORMED, "string contains NUL")
            elif kind is int:
                if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    raise rejected(MALFORMED, "integer outside the safe range +-(2^53 - 1)")
            else:
                _check_value(item, inner)
        return
    raise rejected(MALFORMED, f"type {type(value).__name__} has no canonical encoding")


def encode(value: JSONValue) -> bytes:
    """Encode ``value`` canonically; raises ``malformed-envelope`` on what has no encoding."""
    _check_value(value)
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise rejected(MALFORMED, f"no canonical encoding: {exc}") from None


def encode_trusted(value: JSONValue) -> bytes:
    """The canonical encoding of a value this process assembled from parts already
    checked (log entries on the hot path): the same bytes as :func:`encode`, without
    walking the value first. Anything from outside goes through :func:`encode`."""
    return _ENCODER.encode(value).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {}
    for key, value in pairs:
        if key in out:
            raise rejected(MALFORMED, f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_float(text: str) -> JSONValue:
    raise rejected(MALFORMED, f"floating-point number {text[:20]!r} is not allowed")


def _no_constant(text: str) -> JSONValue:
    raise rejected(MALFORMED, f"{text} is not allowed")


def decode(data: bytes) -> JSONValue:
    """Parse canonical JSON bytes, rejecting anything that is not exactly canonical."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise rejected(MALFORMED, "byte-order mark before JSON")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise rejected(MALFORMED, f"not valid UTF-8 at byte {exc.start}") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_no_float,
                           parse_constant=_no_constant)
    except RecursionError:
        raise rejected(MALFORMED, "JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise rejected(MALFORMED, f"invalid JSON: {exc.msg} at position {exc.pos}") from None
    except ValueError as exc:  # e.g. an integer literal too long to convert
        raise rejected(MALFORMED, f"invalid JSON: {str(exc)[:100]}") from None
    if encode(value) != data:
        raise rejected(MALFORMED, "JSON is not in canonical form (sorted keys, no spaces, "
                                  "minimal escapes)")
    return value
