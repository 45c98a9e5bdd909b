"""What a refused field is, in the user's terms rather than the validator's.

The operator API, ``hotline init`` and the node's config are checked by pydantic, whose
messages speak of regular expressions and Python types ("String should match pattern
'^[0-9a-f]{32}$'", "Value error, ..."). :func:`describe` turns one of its errors (the
dict of ``ValidationError.errors()``) into the field's name and a sentence saying what
the field must be. Pure: it reads the error dict only (no pydantic import).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

#: what a field of a given name holds, by the name of its last path element
TERMS: dict[str, str] = {
    "call_id": "a call id (32 characters 0-9 and a-f, as `hotline call` prints it)",
    "conv_id": "a conversation id (32 characters 0-9 and a-f, as `hotline conversation "
               "list` prints it)",
    "message_id": "a message id (32 characters 0-9 and a-f)",
    "as": "a role id (a lowercase letter, then up to 31 of a-z, 0-9 and '-', e.g. nmcc-do)",
    "role": "a role id (a lowercase letter, then up to 31 of a-z, 0-9 and '-', e.g. nmcc-do)",
    "operator": "an operator id (a lowercase letter, then up to 31 of a-z, 0-9, '.', '_' "
                "and '-', e.g. nmcc-1)",
    "party": "a party id (1-32 of A-Z, 0-9 and '-', e.g. US-JS)",
    "to": "an address (ROLE@PARTY for a call, e.g. cgs@RU-GS; a party id for a message "
          "or a notification)",
    "notice_id": "a notification id (32 characters 0-9 and a-f, as `hotline notification "
                 "list` prints it)",
    "template": "a template id (e.g. incident-notification; GET "
                "/api/v1/notification-templates lists them)",
    "lang": "one of en, ar, ru, uk, pl",
    "receipt": "read or acknowledged",
    "status": "on-duty, off-duty or unavailable",
    "token_id": "a token id, as `hotline token list` prints it",
    "cause": "an alarm cause, as `hotline alarms` prints it",
    "incident_id": "an incident id (32 characters 0-9 and a-f, as `hotline incident list` "
                   "prints it)",
    "corrects": "an entry id (32 characters 0-9 and a-f, as `hotline incident show` "
                "prints it)",
    "refs": "an entry id (32 characters 0-9 and a-f, as `hotline incident show` prints it)",
}

#: what a field holds, by the pattern it must match, whatever its name: a party id in
#: ``to`` of a notification is a party id, not the address a call's ``to`` takes
PATTERN_TERMS: dict[str, str] = {
    r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$": TERMS["party"],
}

#: a closed set written as a pattern, ``^(fact|claim)$``: its words are what it takes
_CHOICES = re.compile(r"\^\(([A-Za-z0-9_-]+(?:\|[A-Za-z0-9_-]+)+)\)\$")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 42 else text[:40] + "…"


def _what(name: str, pattern: Any = None) -> str:
    if isinstance(pattern, str):
        choices = _CHOICES.fullmatch(pattern)
        if choices:
            words = choices[1].split("|")
            return ", ".join(words[:-1]) + " or " + words[-1]
        if pattern in PATTERN_TERMS:
            return PATTERN_TERMS[pattern]
    if name in TERMS:
        return TERMS[name]
    if pattern == r"^[0-9a-f]{32}$":
        return "an id (32 characters 0-9 and a-f)"
    return ""


def _sentence(kind: str, name: str, value: Any, ctx: Mapping[str, Any]) -> str:
    what = _what(name, ctx.get("pattern"))
    if kind == "missing":
        return "is missing" + (f"; it takes {what}" if what else "")
    if kind == "extra_forbidden":
        return "is not a field this request takes"
    if kind in ("string_pattern_mismatch", "literal_error", "enum"):
        expected = what or ("one of " + str(ctx["expected"]) if "expected" in ctx
                            else "in the form this field takes")
        return f"{_shown(value)} is not {expected}"
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length", 1)
        if kind == "string_too_short" and least == 1:
            return "must not be empty" + (f"; it takes {what}" if what else "")
        unit = "characters" if kind.startswith("string") else "items"
        return f"must be at least {least} {unit} long"
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind.startswith("string") else "items"
        return f"must be at most {ctx.get('max_length')} {unit} long"
    bounds = {"less_than_equal": ("at most", "le"), "less_than": ("less than", "lt"),
              "greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{_shown(value)} is not a whole number"
    if kind in ("float_parsing", "float_type", "finite_number"):
        return f"{_shown(value)} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{_shown(value)} is not true or false"
    if kind in ("string_type", "string_unicode"):
        return "must be text"
    if kind in ("list_type", "tuple_type", "set_type"):
        return "must be a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be an object"
    if kind in ("json_invalid", "json_type"):
        return "is not valid JSON"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])  # our own validator's words, without "Value error, "
    return f"{_shown(value)} is not " + (what or "a value this field takes")


def describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """``(field, sentence)`` for one pydantic error: the field as a dotted path
    (``path.call_id``, ``body.as``; ``request`` if none) and what is wrong with it."""
    loc: Sequence[Any] = error.get("loc", ()) or ()
    field = ".".join(str(p) for p in loc) or "request"
    names = [p for p in loc if isinstance(p, str)]
    name = names[-1] if names else ""
    return field, _sentence(str(error.get("type", "")), name, error.get("input"),
                            error.get("ctx") or {})
