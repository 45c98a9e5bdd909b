"""Bounds on every number from outside, in one place.

A number from a query, header, path, form or body must fit the column it reaches, or
the database refuses it with an error the edges cannot name (``OverflowError`` on
SQLite, ``NumericValueOutOfRange`` on PostgreSQL: a 500). So every such number is
checked against the bounds below before any code sees it, and a value outside them is
answered 422 ``invalid-request`` naming the field (:class:`InvalidInput`).

The operator API declares its numbers with the annotated types of
:mod:`hotline.api.fields` (FastAPI checks them and documents the bounds in the OpenAPI
document); the console's form fields and raw
headers use :func:`parse_int`, the console's path ids :func:`check_id`. Federation
bodies are canonical JSON, whose integers are already within +-(2^53 - 1)
(:mod:`hotline.protocol.canonical`), which every ``BigInteger`` column holds; fields
stored in 32-bit ``Integer`` columns are checked against 2^31 - 1 where they are parsed
(:mod:`hotline.protocol.statement`).
"""

from __future__ import annotations

import logging
import re

from hotline.errors import InvalidInput

security_log = logging.getLogger("hotline.security")

#: the largest value of a ``BigInteger`` column (64-bit signed, SQLite and PostgreSQL)
INT64_MAX = 2**63 - 1
#: the largest value of an ``Integer`` column (32-bit signed on PostgreSQL)
INT32_MAX = 2**31 - 1
#: the largest integer canonical JSON carries (and JavaScript reads exactly): ms times
SAFE_MAX = 2**53 - 1

#: 9999-12-31T23:59:59.999Z: the last instant the directory (and ISO 8601) can write
MAX_TIME_MS = 253_402_300_799_999
#: how many items one page of a list may hold
PAGE_MAX = 1000

#: a label (an alarm's cause, a name): no control characters. PostgreSQL refuses NUL in
#: text with an error the edges cannot name, and none belongs in a label.
LABEL_PATTERN = r"^[^\x00-\x1f\x7f]*$"

#: a call, conversation or message id: chosen by a node as 16 random bytes in hex
ID_PATTERN = r"^[0-9a-f]{32}$"
_ID = re.compile(ID_PATTERN)

_DECIMAL = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() takes "²" too


def parse_int(value: str | None, field: str, *, minimum: int = 0,
              maximum: int = INT64_MAX, default: int | None = None) -> int:
    """The integer a form field or header carries, as decimal ASCII digits.

    ``field`` names it in the error (``form.after``, ``header.Last-Event-ID``). An
    absent or empty value gives ``default``. Raises :class:`InvalidInput` (422) for
    anything else than digits from ``minimum`` to ``maximum``, or a missing value
    without a default."""
    text = (value or "").strip()
    if not text:
        if default is None:
            raise InvalidInput(field, "a value is required")
        return default
    sign = -1 if text.startswith("-") and minimum < 0 else 1
    digits = text[1:] if sign < 0 else text
    if not _DECIMAL.fullmatch(digits):
        raise InvalidInput(field, "should be a whole number in decimal digits")
    number = sign * int(digits)
    if not minimum <= number <= maximum:
        raise InvalidInput(field, f"should be from {minimum} to {maximum}")
    return number


def is_id(value: object) -> bool:
    """Whether ``value`` is a call, conversation or message id (a peer's included)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: str, field: str) -> str:
    """``value`` if it is a call, conversation or message id (32 lowercase hex digits);
    else :class:`InvalidInput` (422) naming ``field`` (``path.call_id``)."""
    if not _ID.fullmatch(value):
        raise InvalidInput(field, "should be 32 lowercase hexadecimal digits")
    return value


def log_refused(source: str, method: str, path: str, exc: InvalidInput) -> None:
    """The one security-log line of a request refused for a field out of bounds
    (``source``: the client's address). The value itself is not logged: it may be
    anything, of any length."""
    security_log.warning("refused input from %s: %s %s: %s", source, method, path[:200],
                         exc.message[:300])
