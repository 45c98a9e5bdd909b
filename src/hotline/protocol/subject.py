"""What object an envelope's payload concerns: the call, conversation, notice or incident
it names (a statement it carries names it inside: call states and receipts).

The log's index (``received`` entries) and the refusal lines of the federation handlers
name it, so that a refusal says which object a peer reached for, not only which envelope.
"""

from __future__ import annotations

import json
from typing import Any

#: the payload keys that name an object, in the order they are looked for
SUBJECT_KEYS = ("call", "conversation", "notice", "incident")


def payload_subject(payload: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, id) of the object ``payload`` concerns, or None if it names none."""
    statement = payload.get("statement")
    if isinstance(statement, str):
        try:
            inner = json.loads(statement)
        except ValueError:
            return None
        payload = inner if isinstance(inner, dict) else {}
    for key in SUBJECT_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and len(value) <= 64:
            return key, value
    return None
