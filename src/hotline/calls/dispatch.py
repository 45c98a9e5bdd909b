"""Routing released envelopes to the services they concern, inside the receiver's
transaction, so what an envelope causes commits together with its release.

Each envelope is applied under a savepoint: if applying one fails, none of its effects
stay, the failure is logged, and the rest of the batch (and the link) carries on.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection

from hotline.calls.conversations import ConversationService
from hotline.calls.desks import DeskService
from hotline.calls.service import CallService, PlaceRequest
from hotline.effects import Effects
from hotline.protocol import canonical
from hotline.store import log as log_store
from hotline.store.inbound import Released

security_log = logging.getLogger("hotline.security")
log = logging.getLogger("hotline.calls")


class Dispatcher:
    def __init__(self, *, calls: CallService, conversations: ConversationService,
                 desks: DeskService) -> None:
        self._calls = calls
        self._conversations = conversations
        self._desks = desks

    def __call__(self, conn: Connection, released: list[Released], now: int) -> Effects:
        effects = Effects()
        for item in released:
            if item.type == "message":
                continue
            payload: Any = canonical.decode(item.payload.encode())
            if not isinstance(payload, dict):
                security_log.warning("%s from %s has no object payload", item.type, item.peer)
                continue
            mine = Effects()
            try:
                with log_store.savepoint(conn):  # one envelope's effects: all or nothing
                    self._route(conn, item, payload, now, mine)
            except Exception:
                log.exception("%s %s from %s could not be applied; nothing of it was kept",
                              item.type, item.envelope_id, item.peer)
                continue
            effects.merge(mine)
        return effects

    def _route(self, conn: Connection, item: Released, payload: dict[str, Any], now: int,
               effects: Effects) -> None:
        peer = item.peer
        if item.type == "call.place":
            try:
                request = PlaceRequest.parse(payload)
            except ValueError as exc:
                security_log.warning("call.place from %s refused: %s", peer, exc)
                return
            self._calls.on_place(conn, peer, request, now, effects)
        elif item.type == "call.state":
            raw = payload.get("statement")
            if isinstance(raw, str):
                self._calls.on_state(conn, peer, raw, now, effects)
        elif item.type == "call.cancel":
            call_id = payload.get("call")
            if isinstance(call_id, str):
                self._calls.on_cancel(conn, peer, call_id, now, effects)
        elif item.type == "desks":
            self._desks.on_report(conn, peer, payload, effects)
        elif item.type == "conv.message":
            self._conversations.on_message(conn, peer, payload, now, effects)
        elif item.type == "conv.invite":
            self._conversations.on_invite(conn, peer, payload, now, effects)
        elif item.type == "conv.receipt":
            self._conversations.on_receipt(conn, peer, payload, now, effects)
        else:
            security_log.warning("envelope type %r from %s is not understood", item.type, peer)
