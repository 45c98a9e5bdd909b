"""Forms that act once: a form that sends something carries a token, and the same form
sent again (a second click, or Back and Send again under stress) shows what the first
send did instead of doing it twice.

The token is made when the form is drawn (:func:`new_token`) and remembered with where
its result is (:class:`SentForms`), in memory: a restarted node forgets them, which at
worst lets one stale form act again.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

#: how many sent forms are remembered (the oldest are forgotten first)
MAX_REMEMBERED = 1000


def new_token() -> str:
    """A fresh form token: 32 lowercase hex digits."""
    return secrets.token_hex(16)


class SentForms:
    """Form token -> the page showing what that form did, newest last."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._done: OrderedDict[str, str] = OrderedDict()
        self._limit = limit

    def result(self, token: str) -> str | None:
        """Where the form ``token`` already sent shows its result; None if it did not."""
        return self._done.get(token[:32]) if token else None

    def remember(self, token: str, where: str) -> None:
        """Record that the form ``token`` did its work, shown at ``where``."""
        if not token:
            return
        self._done[token[:32]] = where
        while len(self._done) > self._limit:
            self._done.popitem(last=False)
