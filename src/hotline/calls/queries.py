"""Attribution queries: a call of kind "query" that carries a question and a deadline,
answered by a signed statement with a structured answer (docs/queries.md).

Why a call: a query must reach a person at the callee exactly as a call does — the
callee's chain for the addressed role, rung by the same escalation engine, each step a
statement signed by the callee — and must end in a provable state. So a query *is* a
call (same id on both nodes, same ``call.place`` / ``call.state`` envelopes), with:

* ``call.place`` carrying ``query``: ``{"question": str, "deadline_ms": int}``;
* the callee's ``answered`` statement carrying ``answer``: ``{"answer": yes | no |
  unknown | will-not-answer, "details": str | null}``, signed with the rest;
* the query's deadline, a timer row on each node (the asker's from placing, the callee's
  from delivery, so the callee's is never earlier): at it, a query nobody answered ends
  ``unanswered`` — signed by the callee on its node, and by the asker on its own, which
  then runs the link's fallback. An escalation chain that runs out before the deadline
  does not end a query: the last step's people can still answer until the deadline.

This module holds the pure parts (validation and the state machine) so they can be
tested without a node; :class:`hotline.calls.service.CallService` applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hotline.errors import HotlineError
from hotline.protocol.statement import MAX_DETAILS, QUERY_ANSWERS
from hotline.store.queries import QueryRow

MAX_QUESTION = 1000
MIN_DEADLINE_MS = 1000
MAX_DEADLINE_MS = 7 * 24 * 3600 * 1000
_DURATION_RE = re.compile(r"^([0-9]{1,9})(ms|s|m|h|d)?\Z")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

#: what the asker shows for a query (``status``), from its call state and answer
PENDING = "pending"
STATUSES = (PENDING, "answered", "will-not-answer", "unanswered", "answered-late",
            "refused", "expired", "cancelled", "undeliverable")


def parse_place(value: Any) -> tuple[str, int]:
    """``{"question": str, "deadline_ms": int}`` of a ``call.place``, or ValueError."""
    ok = (isinstance(value, dict) and set(value) == {"question", "deadline_ms"}
          and isinstance(value["question"], str)
          and 0 < len(value["question"]) <= MAX_QUESTION
          and type(value["deadline_ms"]) is int
          and MIN_DEADLINE_MS <= value["deadline_ms"] <= MAX_DEADLINE_MS)
    if not ok:
        raise ValueError("call.place has a malformed query")
    return value["question"], value["deadline_ms"]


def describe(q: QueryRow, direction: str, peer: str, call_state: str,
             history: list[dict[str, Any]]) -> dict[str, Any]:
    """A query's part of a call's description: the question, the deadline, the callee's
    verified answer (None before one) and the one-word status (below)."""
    signer = peer if direction == "out" else None
    answered = next((h for h in history if h.get("answer") is not None
                     and (signer is None or h["signed_by"] == signer)), None)
    answer = None if answered is None else answered["answer"]
    return {"question": q.question, "deadline_ms": q.deadline_ms, "incident": q.incident,
            "answer": answer, "details": None if answered is None else answered["details"],
            "answered_by": None if answered is None else answered["operator"],
            "answer_verified": None if answered is None else answered["verified"],
            "late": q.late, "status": status(call_state, answer, q.late)}


def parse_deadline(text: str) -> int:
    """``"30m"``, ``"90s"``, ``"2h"``, ``"1d"``, ``"1500ms"`` (a bare number: seconds) ->
    milliseconds. Error ``bad-deadline`` (field ``deadline``) for anything else or outside
    1 s .. 7 days."""
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise HotlineError("bad-deadline", f"deadline: {text[:40]!r} is not a duration",
                           hint="write e.g. 30m, 90s, 2h or 1d")
    ms = int(match.group(1)) * _UNIT_MS[match.group(2) or "s"]
    return check_deadline(ms)


def check_deadline(ms: int) -> int:
    if not MIN_DEADLINE_MS <= ms <= MAX_DEADLINE_MS:
        raise HotlineError("bad-deadline", "deadline: a query's deadline is between 1 s "
                                           "and 7 days")
    return ms


def _is_text(value: str) -> bool:
    """Text a signed statement can carry: no NUL, and encodable as UTF-8 (a lone
    surrogate is not)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_question(text: str) -> str:
    """The question, stripped; error ``bad-question`` (field ``question``) if empty, too
    long (> 1000 characters) or not text."""
    text = text.strip()
    if not text or not _is_text(text) or len(text) > MAX_QUESTION:
        raise HotlineError("bad-question", f"question: a query asks a question of 1 to "
                                           f"{MAX_QUESTION} characters")
    return text


def check_answer(answer: str, details: str | None) -> tuple[str, str | None]:
    """Error ``bad-answer`` (field ``answer``) unless one of yes / no / unknown /
    will-not-answer; ``bad-details`` if the details are longer than 2000 characters."""
    if answer not in QUERY_ANSWERS:
        raise HotlineError("bad-answer", f"answer: {answer[:40]!r} is not one of "
                                         f"{', '.join(QUERY_ANSWERS)}")
    if details is not None:
        details = details.strip() or None
    if details is not None and (not _is_text(details) or len(details) > MAX_DETAILS):
        raise HotlineError("bad-details", f"details: at most {MAX_DETAILS} characters of "
                                          "text")
    return answer, details


def status(call_state: str, answer: str | None, late: bool) -> str:
    """What a query is, as one word: ``answered`` (yes / no / unknown),
    ``will-not-answer``, ``unanswered`` (nobody answered by the deadline),
    ``answered-late`` (the callee's signed answer reached the asker only after the
    asker had recorded it unanswered), the call's own end (refused, expired, cancelled,
    undeliverable) or ``pending``."""
    if answer is not None:
        if late:
            return "answered-late"
        return "will-not-answer" if answer == "will-not-answer" else "answered"
    if call_state in ("unanswered", "refused", "expired", "cancelled", "undeliverable"):
        return call_state
    return PENDING


#: call states after which a query's asker changes its recorded state no more
ENDED = frozenset({"answered", "declined", "unanswered", "cancelled", "expired", "refused"})


@dataclass(frozen=True)
class AskerStep:
    """What the asker's node does with one verified statement of the callee."""

    state: str        # the query's call state afterwards
    late: bool        # the answer came after the asker had recorded it unanswered
    fall_back: bool   # run the link's fallback now


def asker_step(current: str, late: bool, stmt_state: str, answer: str | None) -> AskerStep:
    """The asker's query state machine, one callee statement at a time. A state once
    ended stays (but a ``cancelled`` of ours yields to the callee's word, as for calls);
    an answer arriving after our own ``unanswered`` is kept and marked late; the
    fallback runs once, on the first end that calls for it (ours at the deadline, or
    the callee's ``unanswered`` / ``declined``)."""
    ended = current in ENDED
    state = stmt_state if not ended or current == "cancelled" else current
    late = late or (answer is not None and current == "unanswered")
    return AskerStep(state, late, stmt_state in ("unanswered", "declined") and not ended)
