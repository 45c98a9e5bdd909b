"""The console's audit page: the tamper-evident log filtered, paged and worded.

Operators read the log to answer "who did what to this call, and when": so the page
filters by kind, call (or conversation), operator and time, pages back through the log,
and says each entry in a sentence instead of showing its JSON. The verification result
is kept with when it was made, by whom and at what size, so an old result is never shown
as the log's state now.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from hotline.authz.policy import Actor, OperatorActor
from hotline.bounds import check_id
from hotline.console import i18n, views
from hotline.errors import HotlineError
from hotline.log.verify import Report

if TYPE_CHECKING:
    from hotline.console.web import Console

PAGE_SIZE = 50
_OPERATOR = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_KIND = re.compile(r"^[a-z][a-z-]{0,31}$")


@dataclass(frozen=True)
class LogQuery:
    """Filters of the audit page; None is "any". Times are ms since the epoch."""

    kind: str | None = None
    subject: str | None = None
    operator: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    #: show entries below this index (the next page's boundary)
    before: int | None = None
    limit: int = PAGE_SIZE


@dataclass(frozen=True)
class LogPage:
    """Entries newest first (``idx``, ``at``, ``kind``, ``subject``, ``body``), whether
    older ones match too, the log's size now and every kind it holds."""

    entries: list[dict[str, Any]]
    more: bool
    size: int
    kinds: list[str]
    #: the ``idx`` the next (older) page starts below, when ``more``
    boundary: int | None = None


@dataclass(frozen=True)
class AuditServices:
    #: (filters, the reader): an operator gets no entry about a call or conversation
    #: it may not read
    search: Callable[[LogQuery, Actor], Awaitable[LogPage]]
    verify: Callable[[], Awaitable[Report]]


@dataclass(frozen=True)
class Verification:
    """A verification of the whole log: when (ms), by which operator, and its report."""

    at: int
    operator: str
    report: Report


def _time(value: str, field: str) -> int | None:
    """A ``datetime-local`` value, read as UTC (the console's clock), in ms."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HotlineError("bad-filter", f"{field} is not a date and time "
                           "(YYYY-MM-DDTHH:MM, UTC)", status=422) from None
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1000)


def parse_query(params: Mapping[str, str]) -> LogQuery:
    """The filters of ``/audit?kind=&call=&operator=&since=&until=&before=``; a value
    that cannot be one raises ``bad-filter`` (422) naming the field."""
    kind = params.get("kind", "").strip()
    if kind and not _KIND.match(kind):
        raise HotlineError("bad-filter", "kind is not a kind of log entry", status=422)
    call = params.get("call", "").strip().lower()
    if call:
        check_id(call, "query.call")
    operator = params.get("operator", "").strip()
    if operator and not _OPERATOR.match(operator):
        raise HotlineError("bad-filter", "operator is not an operator id", status=422)
    before_text = params.get("before", "").strip()
    if before_text and not before_text.isdigit():
        raise HotlineError("bad-filter", "before is not an entry number", status=422)
    return LogQuery(kind=kind or None, subject=call or None, operator=operator or None,
                    since_ms=_time(params.get("since", "").strip(), "since"),
                    until_ms=_time(params.get("until", "").strip(), "until"),
                    before=int(before_text) if before_text else None)


def summary(entry: Mapping[str, Any], gettext: Callable[[str], str]) -> str:
    """One sentence in the operator's language saying what ``entry`` records; kinds
    without a sentence of their own list their fields as "name: value"."""
    body: Mapping[str, Any] = entry.get("body") or {}
    kind = str(entry.get("kind"))
    values = {k: str(v) for k, v in body.items() if isinstance(v, (str, int))}
    sentences = {
        "sent": gettext("Sent %(type)s to %(peer)s (message %(seq)s)"),
        "received": gettext("Received %(type)s from %(peer)s (message %(seq)s)"),
        "receipt": gettext("%(peer)s confirmed receiving message %(seq)s"),
        "cosigned": gettext("Cosigned %(origin)s's log at %(size)s entries"),
        "call-state": gettext("Call %(call)s: %(signer)s signed the state “%(state)s”"),
        "conversation-message": gettext("Message in conversation %(conversation)s from "
                                        "%(role)s@%(party)s"),
        "message-receipt": gettext("%(signer)s marked a message “%(receipt)s”"),
        "login": gettext("Log-in of %(operator)s: %(outcome)s"),
        "logout": gettext("%(operator)s logged out"),
        "duty-override": gettext("%(operator)s took a shift in %(role)s"),
        "notice": gettext("Notification %(notice)s (%(template)s) from %(party)s"),
        "notice-receipt": gettext("%(signer)s marked notification %(notice)s "
                                  "“%(receipt)s”"),
        "incident": gettext("Incident %(incident)s: %(party)s %(event)s"),
        "incident-entry": gettext("Incident %(incident)s: %(author)s added a "
                                  "“%(type)s” entry"),
    }
    sentence = sentences.get(kind)
    if sentence is not None:
        try:
            return sentence % values
        except (KeyError, TypeError, ValueError):
            pass  # an older body without a field: fall through to its fields
    shown = [f"{k}: {v}" for k, v in sorted(values.items())
             if len(v) <= 80 and k not in ("statement", "digest")]
    return " · ".join(shown) or "\u2013"


class AuditPages:
    def __init__(self, console: Console, services: AuditServices) -> None:
        self.c = console
        self.s = services
        self.last: Verification | None = None

    async def page(self, request: Request, viewer: views.Viewer) -> Response:
        query = parse_query(request.query_params)
        found = await self.s.search(query, OperatorActor(
            operator=viewer.operator, roles=frozenset(viewer.roles), via="console"))
        gettext = i18n.translations(viewer.lang).gettext
        entries = [{**e, "words": summary(e, gettext)} for e in found.entries]
        filters = {k: request.query_params.get(k, "")
                   for k in ("kind", "call", "operator", "since", "until")}
        older = None
        boundary = found.boundary if found.boundary is not None else (
            entries[-1]["idx"] if entries else None)
        if found.more and boundary is not None:
            older = {**{k: v for k, v in filters.items() if v}, "before": str(boundary)}
        return self.c.render("audit.html", viewer.lang, viewer, nav="audit",
                             entries=entries, kinds=found.kinds, filters=filters,
                             older=older, newest=query.before is not None,
                             verification=self.last, size=found.size)

    async def verify(self, request: Request, viewer: views.Viewer,
                     form: dict[str, str]) -> Response:
        report = await self.s.verify()
        self.last = Verification(at=self.c.s.clock.now_ms(), operator=viewer.operator,
                                 report=report)
        if request.headers.get("hx-request") == "true":
            return self.c.render("_verification.html", viewer.lang, viewer,
                                 verification=self.last, size=report.size)
        return self.c.back(request, "/audit")


def add_audit_routes(router: APIRouter, console: Console) -> None:
    pages = AuditPages(console, console.s.audit)
    router.add_api_route("/audit", console.page(pages.page), methods=["GET"])
    router.add_api_route("/audit/verify", console.action(pages.verify), methods=["POST"])
