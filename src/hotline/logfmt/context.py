"""The ids a log line concerns, carried in :mod:`contextvars` so that every line logged
while a request, an envelope, a call or a conversation is being handled names it without
each call site passing it along.

Set at the boundaries: the HTTP middleware (request id), the federation endpoint and the
sender's batch (envelope id), the call service's operations (call id, conversation id).
A line logged on a thread that does not inherit the context (the database writer) names
its ids with ``extra={"call_id": ...}``; the JSON formatter reads both.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from contextvars import ContextVar

#: the four ids, in the order the JSON line gives them
ID_FIELDS = ("request_id", "envelope_id", "call_id", "conversation_id")

_vars: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"hotline_{name}", default=None) for name in ID_FIELDS}


def new_request_id() -> str:
    """A fresh request id: 16 hex characters, random (not derived from anything secret)."""
    return secrets.token_hex(8)


def current() -> dict[str, str]:
    """The ids set in this context, by field name; unset ones are left out."""
    out = {}
    for name, var in _vars.items():
        value = var.get()
        if value is not None:
            out[name] = value
    return out


@contextlib.contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Set the given ids (names from :data:`ID_FIELDS`; None leaves one as it is) for the
    duration of the block, restoring the previous values after it.

    Raises ValueError for a name that is not an id field (a typo would silently log
    nothing)."""
    tokens = []
    try:
        for name, value in ids.items():
            if name not in _vars:
                raise ValueError(f"{name!r} is not a log context id ({', '.join(ID_FIELDS)})")
            if value is not None:
                tokens.append((_vars[name], _vars[name].set(value)))
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind(**ids: str | None) -> None:
    """Set ids for the rest of the current context (an asyncio task has its own copy, so
    this ends with the task: the HTTP middleware's request runs in one)."""
    for name, value in ids.items():
        if name not in _vars:
            raise ValueError(f"{name!r} is not a log context id ({', '.join(ID_FIELDS)})")
        if value is not None:
            _vars[name].set(value)
