"""The call board: counterpart desks by party, the operator's calls with every step.

Placing a call answers with the calls list marked with the new call, which the page
scrolls to; a second call to a desk that a call from this party still rings is placed
only once the operator confirms it (the server asks, so a double click or a second
console cannot place it unasked).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from hotline.console import views
from hotline.console.security import form_field as _field
from hotline.console.security import log_refusal
from hotline.errors import HotlineError

if TYPE_CHECKING:
    from hotline.console.web import Console


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class BoardPages:
    def __init__(self, console: Console) -> None:
        self.c = console

    async def board(self, request: Request, viewer: views.Viewer) -> Response:
        return self.c.render("board.html", viewer.lang, viewer, nav="board",
                           **await self._desks(viewer), **await self._calls(viewer))

    async def _desks(self, viewer: views.Viewer) -> dict[str, Any]:
        await self.c.s.registry.reload()
        desks = views.callable_desks(await self.c.s.calls.desks.desks(),
                                     self.c.s.registry.current, viewer)
        names = {p.party: p.name for p in await self.c.s.status()}
        return {"groups": views.by_party(desks, names)}

    async def _calls(self, viewer: views.Viewer, placed: str | None = None
                     ) -> dict[str, Any]:
        recent = await self.c.s.calls.calls.recent(100)
        desks = await self.c.s.calls.desks.desks()
        directory = self.c.s.registry.current

        def steps(call: dict[str, Any]) -> list[views.Step]:
            return views.steps_of(call, views.titles_for(call, desks, directory,
                                                         viewer.lang))
        return {"calls": views.placed_by(recent, viewer),
                "incoming": views.received_by(recent, viewer), "steps_of": steps,
                "ended_at": views.ended_at, "ended": views.ENDED_STATES, "placed": placed}

    async def desks_fragment(self, request: Request, viewer: views.Viewer) -> Response:
        return self.c.render("_desks.html", viewer.lang, viewer, **await self._desks(viewer))

    async def calls_fragment(self, request: Request, viewer: views.Viewer) -> Response:
        return self.c.render("_calls.html", viewer.lang, viewer, **await self._calls(viewer))

    async def place(self, request: Request, viewer: views.Viewer,
                    form: dict[str, str]) -> Response:
        """Place a call. While a call from this party to the same desk still rings, a
        second one is placed only when the form confirms it (``again=yes``): otherwise
        the operator is asked, nothing is placed, and the refusal is logged once."""
        role = self.c.held_role(viewer, form)
        to = _field(form, "to", max_len=70)
        reason = _field(form, "reason", required=False) or None
        if form.get("again") != "yes":
            ringing = await pending_call_to(self.c.s.calls.calls.recent(100), to)
            if ringing is not None:
                if not await self.c.may_read(viewer, "call", ringing["id"]):
                    # that the desk is being called is the party's to know (docs/
                    # console.md); which call it is belongs to who may read it
                    ringing = {k: v for k, v in ringing.items() if k != "id"}
                return self.ask_again(request, viewer, ringing, role, to, reason)
        call, effects = await self.c.s.calls.calls.place(to, role, reason,
                                                       operator=viewer.operator)
        self.c.s.calls.apply(effects)
        if _is_htmx(request):
            return self.c.render("_calls.html", viewer.lang, viewer,
                               **await self._calls(viewer, placed=call.id))
        return self.c.back(request, "/board")

    def ask_again(self, request: Request, viewer: views.Viewer, ringing: dict[str, Any],
                  role: str, to: str, reason: str | None) -> Response:
        log_refusal(request, HotlineError(
            "call-already-ringing", f"a call to {to} ({ringing.get('id', 'not readable')}) "
            "is still ringing; "
            "a second one needs confirming", status=409), viewer.operator)
        values: dict[str, Any] = {"ringing": ringing, "as_role": role, "to": to,
                                  "reason": reason or ""}
        if _is_htmx(request):
            # a question, not a failure: the page shows it in the flash area
            response = self.c.render("_confirm_call.html", viewer.lang, viewer, **values)
            response.headers["HX-Retarget"] = "#flash"
            response.headers["HX-Reswap"] = "innerHTML"
            return response
        return self.c.render("confirm_call.html", viewer.lang, viewer, status=409, **values)

    async def cancel(self, request: Request, viewer: views.Viewer,
                     form: dict[str, str]) -> Response:
        call_id = request.path_params["call_id"]
        await self.c.allow(viewer, "call", call_id, "cancel")
        _, effects = await self.c.s.calls.calls.cancel(call_id, operator=viewer.operator)
        self.c.s.calls.apply(effects)
        if _is_htmx(request):
            return await self.calls_fragment(request, viewer)
        return self.c.back(request, "/board")


async def pending_call_to(recent: Awaitable[list[dict[str, Any]]], to: str
                          ) -> dict[str, Any] | None:
    """The newest outgoing call to ``to`` that has not ended yet, if any."""
    for call in await recent:
        if call.get("direction") == "out" and call.get("callee") == to \
                and call.get("state") not in views.ENDED_STATES:
            return call
    return None


def add_board_routes(router: APIRouter, console: Console) -> None:
    board = BoardPages(console)
    router.add_api_route("/board", console.page(board.board), methods=["GET"])
    router.add_api_route("/board/desks", console.page(board.desks_fragment), methods=["GET"])
    router.add_api_route("/board/calls", console.page(board.calls_fragment), methods=["GET"])
    router.add_api_route("/board/call", console.action(board.place), methods=["POST"])
    router.add_api_route("/board/calls/{call_id:str}/cancel", console.action(board.cancel),
                         methods=["POST"])
