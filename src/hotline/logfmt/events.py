"""One log line per call and conversation event, written after the transaction that
made it has committed (never from inside one: a group commit may re-run it).

Calls log at INFO (a person watching the node's log sees each call's path: placed,
delivered, ringing, answered...); conversation events at DEBUG (their text is content,
not operations). Each line names its call or conversation id in the logging context.
"""

from __future__ import annotations

import logging
from typing import Any

from hotline.logfmt.context import bound
from hotline.store.journal import Entry

log = logging.getLogger("hotline.calls")


def _describe_call(body: dict[str, Any]) -> str:
    call, event = body.get("call", {}), body.get("event", {})
    parts = [f"call {call.get('id')} {call.get('caller')} -> {call.get('callee')}:",
             str(event.get("state"))]
    if event.get("role"):
        parts.append(f"role {event['role']}")
    # the reason is the caller's words: content, kept out of the operational log
    parts.append(f"signed by {event.get('signed_by', '?')}")
    return " ".join(parts)


def log_journal(entries: list[Entry]) -> None:
    """Log ``entries`` (journal entries just committed) as their kind says."""
    for entry in entries:
        if entry.kind == "call":
            with bound(call_id=entry.subject):
                log.info("%s", _describe_call(entry.body))
        elif entry.kind == "conversation" and log.isEnabledFor(logging.DEBUG):
            event = entry.body.get("event", {})
            with bound(conversation_id=entry.subject):
                log.debug("conversation %s: %s", entry.subject, event.get("type"))
