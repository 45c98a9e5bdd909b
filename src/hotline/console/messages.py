"""Refusals in the operator's language.

The services raise :class:`HotlineError` with an English message for logs and the API;
the console shows the operator a translated sentence for the errors an operator can meet,
and the service's own message for the rest (with the stable id, for support).
"""

from __future__ import annotations

from collections.abc import Callable

from hotline.console.i18n import translations
from hotline.errors import HotlineError


def _known(_: Callable[[str], str]) -> dict[str, str]:
    return {
        "csrf": _("This form did not carry this console's security token (it may have "
                  "expired). Nothing was changed; reload the page and try again."),
        "bad-origin": _("This request came from another site. Nothing was changed."),
        "role-not-held": _("You do not hold that role, so you cannot act in it. Nothing "
                           "was changed."),
        "not-rung": _("That role has not been rung for this call. Nothing was changed."),
        "call-ended": _("This call has already ended. Nothing was changed."),
        "call-forbidden": _("The link policy does not allow this call. Nothing was sent."),
        "no-link": _("There is no line to that party. Nothing was sent."),
        "login-failed": _("Wrong operator, password or code."),
        "bad-code": _("That code is not valid. Nothing was changed."),
        "weak-password": _("The new password must be at least 12 characters long. Nothing was "
                           "changed."),
        "password-mismatch": _("The two new passwords differ. Nothing was changed."),
        "missing-field": _("Please fill in every required field. Nothing was changed."),
        "reason-required": _("Please give a reason the caller will read. Nothing was "
                             "changed."),
        "bad-reason": _("A reason is at most 1000 characters. Nothing was changed."),
        "bad-form": _("The form could not be read. Nothing was changed."),
        "bad-shift-time": _("Please give the start and the end of the shift as a date and "
                            "time in the role's time zone, the end after the start and not "
                            "in the past. Nothing was changed."),
        "bad-override": _("The directory does not allow this shift. Nothing was changed."),
        "no-watch": _("There is no such watch in the next 14 days. Nothing was changed."),
        "already-on-duty": _("You hold the current watch already. Nothing was changed."),
        "no-call": _("There is no such call."),
        "no-conversation": _("There is no such conversation."),
    }


def error_text(error: HotlineError, lang: str) -> str:
    tr = translations(lang)
    gettext, ngettext = tr.gettext, tr.ngettext
    if error.error_id == "locked-out":
        seconds = int(getattr(error, "retry_after_seconds", 0)) or 1
        return ngettext("Too many failed attempts. Try again in %(num)s second.",
                        "Too many failed attempts. Try again in %(num)s seconds.",
                        seconds) % {"num": seconds}
    return _known(gettext).get(error.error_id, error.message)
