"""The operator console: server-rendered pages, htmx fragments, one live event stream.

Every page is plain HTML rendered here (Jinja2); htmx swaps in fragments when the event
stream says something changed, so there is no front-end build and no client state to go
stale. Each state change is a POST that must carry the session's CSRF token and come from
this origin, and is done as the logged-in operator in a role they hold — the services
check the role again, so the console cannot grant more than the operator API would.
Every page and action that names a call, conversation or message asks the
authorization policy (:mod:`hotline.authz`) first, with the roles the directory gives
the operator at the time of the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from hotline.accounts import totp
from hotline.accounts.service import AccountService, LoginRefused
from hotline.api.calls import CallServices
from hotline.authz import policy
from hotline.authz.guard import Kind
from hotline.authz.policy import OperatorActor
from hotline.bounds import check_id
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.console import i18n, text, views
from hotline.console.audit import AuditServices, add_audit_routes
from hotline.console.board import add_board_routes
from hotline.console.incidents import add_incident_routes
from hotline.console.messages import error_text
from hotline.console.notices import add_notice_routes
from hotline.console.schedule import add_schedule_routes
from hotline.console.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    add_security_headers,
    check_origin,
    check_path_ids,
    clear_cookie,
    csrf_given,
    log_refusal,
    new_token,
    read_form,
    same_token,
    set_cookie,
)
from hotline.console.security import form_field as _field
from hotline.console.sound import alarm_wav
from hotline.console.sparkline import sparkline
from hotline.console.throttle import LoginThrottle
from hotline.errors import HotlineError
from hotline.events import Broadcaster
from hotline.forms.service import NoticeService
from hotline.incidents.service import IncidentService
from hotline.status import AlarmStatus, PeerStatus, TaskStatus
from hotline.store.journal import Entry
from hotline.waits import within

log = logging.getLogger("hotline.console")

STATIC_DIR = Path(__file__).parent / "static"
LANGUAGE_NAMES = {"en": "English", "ar": "العربية", "ru": "Русский", "uk": "Українська",
                  "pl": "Polski"}
PRESENCE_EVERY_SECONDS = 20.0
#: journal entries the event stream names (anything else is sent as ``log``)
LIVE_KINDS = frozenset({"call", "conversation", "alarm"})
MAX_FIELD = 65536


@dataclass(frozen=True)
class ConsoleServices:
    """What the console needs, handed in by the composition root."""

    party: str
    name: str
    accounts: AccountService
    calls: CallServices
    registry: Registry
    journal: Broadcaster[Entry]
    status: Callable[[], Awaitable[list[PeerStatus]]]
    audit: AuditServices
    #: the node's supervised tasks and its standing alarms
    health: Callable[[], Awaitable[tuple[list[TaskStatus], list[AlarmStatus]]]]
    clock: Clock
    #: formatted notifications (None: no notification pages)
    notices: NoticeService | None = None
    #: incidents (None: no incident pages)
    incidents: IncidentService | None = None


Handler = Callable[[Request, views.Viewer], Awaitable[Response]]
Action = Callable[[Request, views.Viewer, dict[str, str]], Awaitable[Response]]


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme) may be a redirect target."""
    if target and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return "/board"


class Console:
    def __init__(self, services: ConsoleServices) -> None:
        self.s = services
        self.env = Environment(loader=PackageLoader("hotline.console", "templates"),
                               autoescape=select_autoescape(default=True,
                                                            default_for_string=True),
                               undefined=StrictUndefined, trim_blocks=True,
                               lstrip_blocks=True)
        self.throttle = LoginThrottle(services.clock)

    # -- rendering -----------------------------------------------------------------------
    def context(self, lang: str, viewer: views.Viewer | None) -> dict[str, Any]:
        tr = i18n.translations(lang)
        fmt = i18n.Formatter(lang)
        return {"_": tr.gettext, "ngettext": tr.ngettext, "fmt": fmt, "lang": lang,
                "dir": fmt.direction, "viewer": viewer, "party": self.s.party,
                "party_name": self.s.name, "languages": LANGUAGE_NAMES,
                "csrf": viewer.csrf if viewer else "", "now": self.s.clock.now_ms(),
                "title_in": views.title_in, "state_label": _state_labels(tr.gettext),
                "ltr": _ltr, "dir_of": text.direction, "nav": None}

    def render(self, name: str, lang: str, viewer: views.Viewer | None, *,
               status: int = 200, **values: Any) -> HTMLResponse:
        html = self.env.get_template(name).render({**self.context(lang, viewer), **values})
        return HTMLResponse(html, status_code=status)

    def failure(self, request: Request, viewer: views.Viewer, error: HotlineError
                ) -> Response:
        """A refused action: one clear sentence where the operator is looking (the flash
        area for htmx, an error page otherwise); the error id helps support."""
        text = error_text(error, viewer.lang)
        if _is_htmx(request):
            response = self.render("_flash.html", viewer.lang, viewer, status=error.status,
                                   message=text, error_id=error.error_id)
            # an action in the alarm is refused where the operator looks: in the alarm,
            # which covers the page's own message area
            in_alarm = request.url.path.startswith("/alarm/")
            response.headers["HX-Retarget"] = "#alarm-error" if in_alarm else "#flash"
            response.headers["HX-Reswap"] = "innerHTML"
            return response
        return self.render("error.html", viewer.lang, viewer, status=error.status,
                           message=text, error_id=error.error_id)

    # -- who is asking -------------------------------------------------------------------
    async def viewer(self, request: Request) -> views.Viewer | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token or len(token) > 200:
            return None
        session = await self.s.accounts.session(token)
        if session is None:
            return None
        await self.s.registry.reload()  # the roles as the directory gives them now
        operator = self.s.registry.current.operators.get(session.operator)
        if operator is None:
            return None
        return views.Viewer(operator=operator.id, name=operator.name,
                            roles=tuple(operator.roles), lang=session.lang,
                            csrf=session.csrf)

    def to_login(self, request: Request) -> Response:
        target = "/login?next=" + quote(request.url.path, safe="/")
        if _is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            viewer = await self.viewer(request)
            if viewer is None:
                return self.to_login(request)
            try:
                check_path_ids(request)
                return await handler(request, viewer)
            except HotlineError as exc:
                log_refusal(request, exc, viewer.operator)
                return self.failure(request, viewer, exc)
        return route

    def action(self, handler: Action) -> Callable[[Request], Awaitable[Response]]:
        """A state change: logged in, same origin, the session's CSRF token, a readable
        form — all checked before the handler runs, so a refusal changes nothing."""
        async def route(request: Request) -> Response:
            viewer = await self.viewer(request)
            if viewer is None:
                return self.to_login(request)
            try:
                check_path_ids(request)
                check_origin(request)
                form = await read_form(request)
                if not same_token(viewer.csrf, csrf_given(request, form)):
                    raise HotlineError("csrf", "the security token is missing or wrong",
                                       status=403)
                return await handler(request, viewer, form)
            except HotlineError as exc:
                log_refusal(request, exc, viewer.operator)
                return self.failure(request, viewer, exc)
        return route

    def held_role(self, viewer: views.Viewer, form: Mapping[str, str]) -> str:
        role = _field(form, "as", max_len=32)
        self.s.calls.guard.require_role(_actor(viewer), role, "console action")
        return role

    async def allow(self, viewer: views.Viewer, kind: Kind, obj_id: str,
                    action: policy.Action,
                    as_role: str | None = None) -> None:
        """Ask the policy; a refusal raises (404 as if absent, or 403), logged once."""
        await self.s.calls.guard.require(_actor(viewer), kind, obj_id, action,
                                         as_role=as_role)

    async def may_read(self, viewer: views.Viewer, kind: str, obj_id: str) -> bool:
        """Whether the viewer may see the object (no refusal logged: for what a page
        leaves out)."""
        return await self.s.calls.guard.may_read(_actor(viewer), kind, obj_id)

    def back(self, request: Request, fallback: str) -> Response:
        return RedirectResponse(_safe_next(request.query_params.get("next") or fallback),
                                status_code=303)

    # -- login ---------------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        lang = i18n.negotiate(request.query_params.get("lang"),
                              request.headers.get("accept-language"))
        return self.login_form(request, lang)

    def login_form(self, request: Request, lang: str, *, message: str | None = None,
                   status: int = 200, operator: str = "") -> Response:
        token = new_token()
        response = self.render("login.html", lang, None, status=status, login_csrf=token,
                               message=message, operator=operator,
                               next=_safe_next(request.query_params.get("next")))
        set_cookie(response, LOGIN_COOKIE, token, max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        lang = i18n.negotiate(request.query_params.get("lang"),
                              request.headers.get("accept-language"))
        try:
            check_origin(request)
            form = await read_form(request)
        except HotlineError as exc:
            log_refusal(request, exc)
            return self.login_form(request, lang, message=error_text(exc, lang),
                                   status=exc.status)
        lang = i18n.supported(form.get("lang")) or lang
        gettext = i18n.translations(lang).gettext
        if not same_token(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
            log_refusal(request, HotlineError("csrf", "the log-in form's token is missing "
                                                      "or wrong", status=403))
            return self.login_form(request, lang, status=403, message=gettext(
                "The login form had expired. Please try again."))
        operator = form.get("operator", "").strip()[:64]
        password = form.get("password", "")[:1024]
        code = form.get("code", "").strip()[:16]
        address = request.client.host if request.client else "unknown"
        wait_ms = self.throttle.retry_after_ms(address)
        if wait_ms > 0:
            log.warning("log-in from %s refused: too many failures from that address",
                        address)
            refused = LoginRefused("locked-out", "too many failed log-ins from this address",
                                   status=429, retry_after_seconds=-(-wait_ms // 1000))
            return self.login_form(request, lang, message=error_text(refused, lang),
                                   status=429, operator=operator)
        try:
            session = await self.s.accounts.login(operator, password, code, lang=lang,
                                                  remote=address)
        except LoginRefused as exc:
            self.throttle.failed(address)  # hammering a locked account counts too
            return self.login_form(request, lang, message=error_text(exc, lang),
                                   status=exc.status, operator=operator)
        self.throttle.succeeded(address)
        assert session.token is not None
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        set_cookie(response, SESSION_COOKIE, session.token, max_age=None)
        clear_cookie(response, LOGIN_COOKIE)
        return response

    async def logout(self, request: Request, viewer: views.Viewer,
                     form: dict[str, str]) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await self.s.accounts.logout(token)
        response = RedirectResponse(f"/login?lang={viewer.lang}", status_code=303)
        clear_cookie(response, SESSION_COOKIE)
        return response

    # -- the incoming-call alarm ---------------------------------------------------------
    async def alarm_fragment(self, request: Request, viewer: views.Viewer) -> Response:
        incoming = await self.s.calls.calls.recent(50, active_only=True)
        alarms = views.alarms_for(incoming, viewer)
        titles: dict[str, str] = {}
        if alarms:
            titles = views.role_titles(alarms[0].call, await self.s.calls.desks.desks(),
                                       self.s.registry.current, viewer.lang)
        return self.render("_alarm.html", viewer.lang, viewer, alarms=alarms, titles=titles)

    async def answer(self, request: Request, viewer: views.Viewer,
                     form: dict[str, str]) -> Response:
        role = self.held_role(viewer, form)
        call_id = request.path_params["call_id"]
        await self.allow(viewer, "call", call_id, "answer", role)
        call, effects = await self.s.calls.calls.answer(call_id, role, viewer.operator)
        self.s.calls.apply(effects)
        target = f"/conversations/{call.id}"
        if _is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    async def query_answer(self, request: Request, viewer: views.Viewer,
                           form: dict[str, str]) -> Response:
        """One of the four answer buttons of an incoming query, with its details."""
        role = self.held_role(viewer, form)
        answer = _field(form, "answer")
        details = _field(form, "details", required=False, max_len=2000) or None
        call_id = request.path_params["call_id"]
        await self.allow(viewer, "call", call_id, "answer", role)
        _, effects = await self.s.calls.calls.answer(call_id, role, viewer.operator,
                                                     (answer, details))
        self.s.calls.apply(effects)
        if _is_htmx(request):
            return await self.alarm_fragment(request, viewer)
        return self.back(request, "/board")

    async def decline(self, request: Request, viewer: views.Viewer,
                      form: dict[str, str]) -> Response:
        role = self.held_role(viewer, form)
        reason = _field(form, "reason", required=False)
        call_id = request.path_params["call_id"]
        await self.allow(viewer, "call", call_id, "decline", role)
        _, effects = await self.s.calls.calls.decline(call_id, role, reason, viewer.operator)
        self.s.calls.apply(effects)
        if _is_htmx(request):
            return await self.alarm_fragment(request, viewer)
        return self.back(request, "/board")

    # -- conversations -------------------------------------------------------------------
    async def conversations(self, request: Request, viewer: views.Viewer) -> Response:
        items = await self.s.calls.guard.visible_conversations(
            _actor(viewer), await self.s.calls.conversations.recent())
        return self.render("conversations.html", viewer.lang, viewer, nav="conversations",
                           conversations=items)

    async def conversation(self, request: Request, viewer: views.Viewer) -> Response:
        await self.allow(viewer, "conversation", request.path_params["conv_id"], "read")
        conv = await self.s.calls.conversations.get(request.path_params["conv_id"])
        linked = [p.party for p in await self.s.status() if p.party not in conv["members"]]
        return self.render("conversation.html", viewer.lang, viewer, nav="conversations",
                           conv=conv, addable=linked)

    async def messages_fragment(self, request: Request, viewer: views.Viewer) -> Response:
        await self.allow(viewer, "conversation", request.path_params["conv_id"], "read")
        return await self._messages(viewer, request.path_params["conv_id"])

    async def _messages(self, viewer: views.Viewer, conv_id: str) -> Response:
        conv = await self.s.calls.conversations.get(conv_id)
        return self.render("_messages.html", viewer.lang, viewer, conv=conv)

    async def say(self, request: Request, viewer: views.Viewer,
                  form: dict[str, str]) -> Response:
        role = self.held_role(viewer, form)
        text = _field(form, "text", max_len=MAX_FIELD)
        conv_id = request.path_params["conv_id"]
        await self.allow(viewer, "conversation", conv_id, "say", role)
        _, effects = await self.s.calls.conversations.say(conv_id, text, role,
                                                          viewer.operator)
        self.s.calls.apply(effects)
        if _is_htmx(request):
            return await self._messages(viewer, conv_id)
        return self.back(request, f"/conversations/{conv_id}")

    async def add_member(self, request: Request, viewer: views.Viewer,
                         form: dict[str, str]) -> Response:
        """Make the conversation a conference: invite another linked party."""
        role = self.held_role(viewer, form)
        conv_id = request.path_params["conv_id"]
        await self.allow(viewer, "conversation", conv_id, "add-member", role)
        _, effects = await self.s.calls.conversations.add_member(
            conv_id, _field(form, "party", max_len=32))
        self.s.calls.apply(effects)
        return RedirectResponse(f"/conversations/{conv_id}", status_code=303)

    async def receipt(self, request: Request, viewer: views.Viewer,
                      form: dict[str, str]) -> Response:
        role = self.held_role(viewer, form)
        kind = _field(form, "receipt", max_len=16)
        if kind not in ("read", "acknowledged"):
            raise HotlineError("bad-form", "a receipt is 'read' or 'acknowledged'")
        conv_id = check_id(_field(form, "conversation", max_len=32), "form.conversation")
        # the page answered is this conversation's messages: the operator must be able
        # to see it, whatever message the receipt is for (else any id would be rendered)
        await self.allow(viewer, "conversation", conv_id, "read")
        await self.allow(viewer, "message", request.path_params["message_id"], "receipt",
                         role)
        _, effects = await self.s.calls.conversations.receipt(
            request.path_params["message_id"], kind, role, viewer.operator)
        self.s.calls.apply(effects)
        if _is_htmx(request):
            return await self._messages(viewer, conv_id)
        return self.back(request, f"/conversations/{conv_id}")

    # -- the node's own alarms -----------------------------------------------------------
    async def banner_fragment(self, request: Request, viewer: views.Viewer) -> Response:
        """The alarm banner every page shows, whatever the operator's roles."""
        tasks, alarms = await self.s.health()
        return self.render("_banner.html", viewer.lang, viewer,
                           banner=views.banner(tasks, alarms),
                           alarm_kind=_alarm_kinds(i18n.translations(viewer.lang).gettext),
                           ms_of=views.ms_of)

    # -- link health and audit log -------------------------------------------------------
    async def links(self, request: Request, viewer: views.Viewer) -> Response:
        return self.render("links.html", viewer.lang, viewer, nav="links",
                           **await self._links(viewer))

    async def links_fragment(self, request: Request, viewer: views.Viewer) -> Response:
        return self.render("_links.html", viewer.lang, viewer, **await self._links(viewer))

    async def _links(self, viewer: views.Viewer) -> dict[str, Any]:
        tasks, _alarms = await self.s.health()
        return {"peers": await self.s.status(), "tasks": tasks, "ms_of": views.ms_of,
                "sparkline": sparkline,
                "task_state": _task_states(i18n.translations(viewer.lang).gettext)}

    # -- the operator's own account ------------------------------------------------------
    async def account(self, request: Request, viewer: views.Viewer) -> Response:
        return self.render("account.html", viewer.lang, viewer, nav="account",
                           enrolment=None, done=request.query_params.get("done"))

    async def set_language(self, request: Request, viewer: views.Viewer,
                           form: dict[str, str]) -> Response:
        lang = i18n.supported(form.get("lang"))
        if lang is None:
            raise HotlineError("bad-form", "unknown language")
        await self.s.accounts.set_language(request.cookies[SESSION_COOKIE], lang)
        return RedirectResponse(_safe_next(form.get("next")), status_code=303)

    async def begin_totp(self, request: Request, viewer: views.Viewer,
                         form: dict[str, str]) -> Response:
        secret = await self.s.accounts.begin_totp(request.cookies[SESSION_COOKIE])
        uri = totp.provisioning_uri(secret, viewer.operator, self.s.party)
        return self.render("account.html", viewer.lang, viewer, nav="account", done=None,
                           enrolment={"secret": secret, "qr": Markup(totp.qr_svg(uri))})  # noqa: S704 - segno's SVG of our own URI

    async def confirm_totp(self, request: Request, viewer: views.Viewer,
                           form: dict[str, str]) -> Response:
        await self.s.accounts.confirm_totp(request.cookies[SESSION_COOKIE],
                                           _field(form, "code", max_len=16))
        return RedirectResponse("/account?done=totp", status_code=303)

    async def change_password(self, request: Request, viewer: views.Viewer,
                              form: dict[str, str]) -> Response:
        new = form.get("new", "")
        if new != form.get("confirm", ""):
            raise HotlineError("password-mismatch", "the two new passwords differ")
        await self.s.accounts.change_password(request.cookies[SESSION_COOKIE],
                                              form.get("current", ""), new)
        return RedirectResponse("/account?done=password", status_code=303)

    # -- live events ---------------------------------------------------------------------
    async def events(self, request: Request, viewer: views.Viewer) -> Response:
        """One stream per open page: a named event per change (``call``,
        ``conversation``, ``alarm``), on which the page re-fetches the fragments
        concerned. While a page is open, the operator counts as present at the desk."""
        token = request.cookies.get(SESSION_COOKIE, "")

        async def stream() -> AsyncIterator[ServerSentEvent]:
            loop = asyncio.get_running_loop()
            await self._present(viewer.operator)
            yield ServerSentEvent(comment="connected")
            beat = loop.time() + self._presence_every()
            async with self.s.journal.subscribe() as sub:
                while True:
                    entry: Entry | None = None
                    with contextlib.suppress(TimeoutError):
                        entry = await within(sub.get(), beat - loop.time())
                    if loop.time() >= beat:  # due, however busy the stream is
                        if await self.s.accounts.session(token) is None:
                            yield ServerSentEvent(event="logout", data="")
                            return
                        await self._present(viewer.operator)
                        beat = loop.time() + self._presence_every()
                    if entry is not None and entry.kind in ("call", "conversation"):
                        # the session and roles as they are now, not as they were when the
                        # page opened: a role taken away mid-session stops its events
                        current = await self.viewer(request)
                        if current is None:
                            yield ServerSentEvent(event="logout", data="")
                            return
                        if not await self.s.calls.guard.may_read(
                                _actor(current), entry.kind, entry.subject):
                            entry = None  # not theirs: not even the id
                    if entry is not None:
                        kind = entry.kind if entry.kind in LIVE_KINDS else "log"
                        yield ServerSentEvent(event=kind, data=json.dumps(entry.subject))

        return EventSourceResponse(stream(), ping=15)

    def _presence_every(self) -> float:
        """Often enough that an open console keeps its operator's desk staffed (half the
        directory's ``staffed_within``), never more than once a second."""
        half = self.s.registry.current.staffed_within_ms / 2000
        return max(1.0, min(PRESENCE_EVERY_SECONDS, half))

    async def _present(self, operator: str) -> None:
        with contextlib.suppress(HotlineError):  # left the directory: next request logs out
            await self.s.calls.desks.seen(operator)

    async def alarm_sound(self, request: Request) -> Response:
        return Response(alarm_wav(), media_type="audio/wav",
                        headers={"Cache-Control": "max-age=86400"})

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/board", status_code=303)


def _actor(viewer: views.Viewer) -> OperatorActor:
    return OperatorActor(operator=viewer.operator, roles=frozenset(viewer.roles),
                         via="console")


def _ltr(text: object) -> Markup:
    """An identifier (``cgs@RU-GS``, a call id) isolated as left-to-right text, so it
    reads correctly inside Arabic sentences."""
    return Markup('<bdi dir="ltr">{}</bdi>').format(str(text))


def _state_labels(gettext: Callable[[str], str]) -> dict[str, str]:
    return {
        "placed": gettext("Placed"), "delivered": gettext("Delivered"),
        "ringing": gettext("Ringing"), "answered": gettext("Answered"),
        "declined": gettext("Declined"), "unanswered": gettext("Unanswered"),
        "undeliverable": gettext("Undeliverable"), "cancelled": gettext("Cancelled"),
        "expired": gettext("Expired"), "refused": gettext("Refused"),
        "fallback": gettext("Fallback"),
    }


def _alarm_kinds(gettext: Callable[[str], str]) -> dict[str, str]:
    """Names of the alarms the node raises (see health/alarms.py); an alarm of another
    kind shows its id."""
    return {
        "task-failed": gettext("Background task failed"),
        "clock-step": gettext("This node's clock jumped"),
        "clock-skew": gettext("The peer's clock is off"),
        "notification-failed": gettext("Notification not delivered"),
        "log-equivocation": gettext("The peer signed two different logs"),
        "log-shrinking": gettext("The peer's log got shorter"),
        "log-inconsistent": gettext("The peer's log was rewritten"),
        "checkpoint-refused": gettext("The peer refused our log checkpoint"),
        "link-removed": gettext("The peer removed the link"),
    }


def _task_states(gettext: Callable[[str], str]) -> dict[str, str]:
    return {"starting": gettext("Starting"), "running": gettext("Running"),
            "restarting": gettext("Restarting"), "stopped": gettext("Stopped")}


def console_router(services: ConsoleServices) -> APIRouter:
    c = Console(services)
    router = APIRouter(include_in_schema=False)
    get, post = ["GET"], ["POST"]
    router.add_api_route("/", c.home, methods=get)
    router.add_api_route("/login", c.login_page, methods=get)
    router.add_api_route("/login", c.login, methods=post)
    router.add_api_route("/logout", c.action(c.logout), methods=post)
    add_board_routes(router, c)
    router.add_api_route("/alarm", c.page(c.alarm_fragment), methods=get)
    router.add_api_route("/alarm/{call_id:str}/answer", c.action(c.answer), methods=post)
    router.add_api_route("/alarm/{call_id:str}/decline", c.action(c.decline), methods=post)
    router.add_api_route("/alarm/{call_id:str}/query-answer", c.action(c.query_answer),
                         methods=post)
    router.add_api_route("/conversations", c.page(c.conversations), methods=get)
    router.add_api_route("/conversations/{conv_id:str}", c.page(c.conversation),
                         methods=get)
    router.add_api_route("/conversations/{conv_id:str}/messages",
                         c.page(c.messages_fragment), methods=get)
    router.add_api_route("/conversations/{conv_id:str}/say", c.action(c.say), methods=post)
    router.add_api_route("/conversations/{conv_id:str}/members", c.action(c.add_member),
                         methods=post)
    router.add_api_route("/receipts/{message_id:str}", c.action(c.receipt), methods=post)
    router.add_api_route("/links", c.page(c.links), methods=get)
    router.add_api_route("/links/table", c.page(c.links_fragment), methods=get)
    add_audit_routes(router, c)
    add_schedule_routes(router, c)
    if services.notices is not None:
        add_notice_routes(router, c, services.notices, services.incidents)
    if services.incidents is not None:
        add_incident_routes(router, c, services.incidents)
    router.add_api_route("/account", c.page(c.account), methods=get)
    router.add_api_route("/account/language", c.action(c.set_language), methods=post)
    router.add_api_route("/account/totp", c.action(c.begin_totp), methods=post)
    router.add_api_route("/account/totp/confirm", c.action(c.confirm_totp), methods=post)
    router.add_api_route("/account/password", c.action(c.change_password), methods=post)
    router.add_api_route("/console/events", c.page(c.events), methods=get)
    router.add_api_route("/console/banner", c.page(c.banner_fragment), methods=get)
    router.add_api_route("/console/alarm.wav", c.alarm_sound, methods=get)
    return router


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)


__all__ = ["AuditServices", "ConsoleServices", "add_security_headers", "console_router",
           "static_files"]
