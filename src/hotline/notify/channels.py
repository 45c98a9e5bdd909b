"""What a channel delivers (:class:`Alert`), how it fails (:class:`ChannelError`) and what
every channel looks like (:class:`Channel`).

An alert is a plain value so the notifications table can store it, rebuild it after a
restart and hand the very same alert to a channel again: its ``key`` is what lets a
receiver recognise the retry and drop the duplicate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

#: ``kind`` and ``key`` travel in HTTP and mail headers, so they are kept to visible
#: ASCII without spaces: a stray newline there would be header injection, and a
#: non-ASCII byte would make the attempt fail the same way on every retry.
_TOKEN = re.compile(r"[!-~]{1,200}")

#: Characters that would break a one-line subject or forge lines in a body: C0/C1
#: controls (CR, LF, NUL, ESC...) and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")

_HEADLINES = {
    "ringing": "CALL",
    "undeliverable": "UNDELIVERABLE call",
    "unanswered": "UNANSWERED call",
    "declined": "DECLINED call",
    "answered": "ANSWERED call",
    "fallback": "FALLBACK call",
}

#: How each kind names the roles of the alert in the subject line.
_ROLE_VERBS = {
    "ringing": "ringing",
    "unanswered": "no answer from",
    "declined": "declined by",
    "answered": "answered by",
    "fallback": "ringing",
}

_SUBJECT_MAX = 200


def one_line(text: str) -> str:
    """``text`` with control characters and runs of white space turned into one space.

    Alert fields come from peers and operators; rendering them into a subject or a body
    line must not let them start a new header or fake a line of the alert.
    """
    return " ".join(_CONTROL.sub(" ", text).split())


@dataclass(frozen=True)
class Alert:
    """One notification about one call, as the escalation engine decided to send it.

    ``step`` is shown exactly as given (the caller chooses the numbering people see).
    ``key`` is unique per alert and identical across retries of it; receivers dedupe
    on it.
    """

    kind: str
    party: str
    call_id: str
    caller: str
    callee: str
    step: int | None
    roles: tuple[str, ...]
    operators: tuple[str, ...]
    reason: str | None
    at_ms: int
    key: str

    def __post_init__(self) -> None:
        # Caught here, at creation, because a bad key or kind would otherwise fail every
        # delivery attempt identically and only surface once retries run out.
        for field, value in (("kind", self.kind), ("key", self.key)):
            if not isinstance(value, str) or not _TOKEN.fullmatch(value):
                raise ValueError(f"alert {field} must be 1-200 visible ASCII characters "
                                 f"without spaces, not {value!r}")

    def as_dict(self) -> dict[str, Any]:
        """The alert as a JSON-able dict (tuples become lists, ``None`` stays null)."""
        return {
            "kind": self.kind,
            "party": self.party,
            "call_id": self.call_id,
            "caller": self.caller,
            "callee": self.callee,
            "step": self.step,
            "roles": list(self.roles),
            "operators": list(self.operators),
            "reason": self.reason,
            "at_ms": self.at_ms,
            "key": self.key,
        }

    def subject(self) -> str:
        """A one-line summary that says what happened and who must act, e.g.
        ``CALL for cgs@RU-GS from nmcc-do@US-JS — step 2, ringing cgs-1d``.

        Phones and mail lists often show nothing but this line, so the most urgent
        facts come first and it never spans lines.
        """
        headline = _HEADLINES.get(self.kind, f"{self.kind.upper()} call")
        text = f"{headline} for {one_line(self.callee)} from {one_line(self.caller)}"
        details: list[str] = []
        if self.step is not None:
            details.append(f"step {self.step}")
        who = self.roles or (self.operators if self.kind == "answered" else ())
        if who:
            verb = _ROLE_VERBS.get(self.kind, "roles")
            details.append(f"{verb} {' + '.join(one_line(r) for r in who)}")
        if self.reason and self.kind not in ("ringing", "answered"):
            details.append(one_line(self.reason))
        if details:
            text += " — " + ", ".join(details)
        if len(text) > _SUBJECT_MAX:
            text = text[:_SUBJECT_MAX - 1] + "…"
        return text

    def text(self) -> str:
        """A short plain-text body: the subject, then one labelled fact per line."""
        lines = [
            self.subject(),
            "",
            f"What:       {one_line(self.kind)}",
            f"Call:       {one_line(self.call_id)}",
            f"From:       {one_line(self.caller)}",
            f"To:         {one_line(self.callee)}",
        ]
        if self.step is not None:
            lines.append(f"Step:       {self.step}")
        if self.roles:
            lines.append(f"Roles:      {', '.join(one_line(r) for r in self.roles)}")
        if self.operators:
            lines.append(f"Operators:  {', '.join(one_line(o) for o in self.operators)}")
        if self.reason:
            lines.append(f"Reason:     {one_line(self.reason)}")
        lines += [
            f"When:       {_utc(self.at_ms)}",
            f"Node:       {one_line(self.party)}",
            f"Alert key:  {self.key}",
        ]
        return "\n".join(lines) + "\n"


def _utc(at_ms: int) -> str:
    try:
        at = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return f"{at_ms} ms since 1970"  # a bad time must not stop the alert going out
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


class ChannelError(Exception):
    """One delivery attempt failed.

    ``permanent`` tells the caller whether the same attempt can ever succeed: a receiver
    that refuses the request itself (HTTP 4xx other than 408/429, SMTP 5xx) will refuse
    it again, so retrying only delays raising the alarm elsewhere; a network error, a
    timeout or a server-side failure may well clear up, so those are transient.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __str__(self) -> str:
        return f"{self.message} ({'permanent' if self.permanent else 'transient'})"


def http_status_is_permanent(status: int) -> bool:
    """Whether an HTTP failure status means "do not retry": 4xx except 408 (request
    timeout) and 429 (too many requests), which ask for exactly a later retry."""
    return 400 <= status < 500 and status not in (408, 429)


class Channel(Protocol):
    """An outbound channel: one attempt per call, bounded by the channel's timeout.

    ``deliver`` returns once the receiver has accepted the alert and raises
    :class:`ChannelError` otherwise; it never retries by itself.
    """

    name: str

    async def deliver(self, alert: Alert) -> None: ...
