"""Numbers as people type them: digits of any numeral system read as ASCII digits.

Shared by the edges that read typed numbers (the console's forms, the CLI's ``--field``)
so a TOTP code, a count or a coordinate typed on an Arabic keyboard (Arabic-Indic
digits and decimal separator) means what it says. What is signed and stored stays
ASCII: the checks of protocol values accept ``[0-9]`` only.
"""

from __future__ import annotations

import unicodedata

#: separators of other numeral systems, as the ASCII ones they stand for: the Arabic
#: decimal separator (U+066B) and the Arabic thousands separator (U+066C, dropped)
_SEPARATORS = {"\u066b": ".", "\u066c": ""}


def ascii_digits(text: str) -> str:
    """``text`` with every decimal digit of any numeral system (Arabic-Indic ``٣``,
    Extended Arabic-Indic ``۳``, Devanagari ``३``, full-width digits …) written as the
    ASCII digit of the same value, and the Arabic decimal separator (U+066B) as ``.``;
    other characters are kept. Spaces between groups of digits (``388 458``) are
    dropped, as authenticator apps show them."""
    out = []
    for char in text:
        if char.isspace():
            continue
        if char in _SEPARATORS:
            out.append(_SEPARATORS[char])
            continue
        value = unicodedata.decimal(char, None)
        out.append(str(value) if value is not None else char)
    return "".join(out)
