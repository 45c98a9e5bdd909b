"""What the console does to text people typed: digits read the same in every numeral
system, and user text gets a base direction chosen from its content.

Both are pure functions of a string, so the console's forms and templates share one rule
each instead of every page deciding on its own.
"""

from __future__ import annotations

import unicodedata

from hotline.numerals import ascii_digits

__all__ = ["NUMERIC_FIELDS", "ascii_digits", "direction"]

#: Form fields that hold a number whatever the page (a TOTP code). :func:`hotline.console.
#: security.read_form` normalises their digits, so no handler has to remember; the fields
#: of a notification form, whose names come from its template, are read by type in
#: :func:`hotline.console.notices.fields_from_form` with the same function.
NUMERIC_FIELDS = frozenset({"code"})

_RTL_CLASSES = frozenset({"R", "AL"})


def direction(text: str | None) -> str:
    """The base direction for showing ``text``: ``"rtl"`` when it has more strongly
    right-to-left letters (Arabic, Hebrew …) than left-to-right ones, else ``"ltr"``.

    Unlike the browser's ``dir="auto"``, which follows the first strong letter, this
    counts them all: ``US-JS: سقط صاروخ … الساعة 15:40`` is an Arabic sentence that
    starts with a Latin id, and reads right to left."""
    rtl = ltr = 0
    for char in text or "":
        kind = unicodedata.bidirectional(char)
        if kind in _RTL_CLASSES:
            rtl += 1
        elif kind == "L":
            ltr += 1
    return "rtl" if rtl > ltr else "ltr"
