"""Routing released envelopes to the services they concern, inside the receiver's
transaction, so what an envelope causes commits together with its release.

Each envelope is applied under a savepoint: if applying one fails, none of its effects
stay, the failure is logged, and the rest of the batch (and the link) carries on.

Every refusal of an envelope's effect leaves exactly one ``hotline.security`` line: a
handler (or the authorization guard's ``peer_require``) raises
:class:`~hotline.errors.PeerRefused`, or applying fails unexpectedly (the stack goes to
``hotline.calls`` for whoever debugs it). The line travels in the returned
:class:`~hotline.effects.Effects` and is written after the commit, because the writer
may run this work twice (a failed group commit is re-run item by item).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from hotline.bounds import is_id
from hotline.calls.conversations import ConversationService
from hotline.calls.desks import DeskService
from hotline.calls.service import CallService, PlaceRequest
from hotline.effects import Effects
from hotline.errors import PeerRefused
from hotline.protocol import canonical
from hotline.protocol.generation import REMOVED_TYPE
from hotline.protocol.subject import payload_subject
from hotline.store import log as log_store
from hotline.store.inbound import LOST_TYPE, Released

if TYPE_CHECKING:
    from hotline.federation.keys import KeyStatements

#: a handler of one envelope type from another domain package (notices, incidents):
#: (conn, peer, payload, now, effects), raising PeerRefused to refuse it
Handler = Callable[[Connection, str, dict[str, Any], int, Effects], None]

log = logging.getLogger("hotline.calls")


def _about(payload: object, said: str) -> str:
    """`` (about incident ID)``: the object the refused envelope reached for, when the
    refusal's reason does not name it already (every refusal line names actor, object
    and action)."""
    named = payload_subject(payload) if isinstance(payload, dict) else None
    if named is None or named[1] in said:
        return ""
    return f" (about {named[0]} {named[1]})"


class Dispatcher:
    def __init__(self, *, calls: CallService, conversations: ConversationService,
                 desks: DeskService, keys: KeyStatements | None = None,
                 handlers: Mapping[str, Handler] | None = None) -> None:
        self._keys = keys
        self._handlers = dict(handlers or {})
        self._calls = calls
        self._conversations = conversations
        self._desks = desks

    def __call__(self, conn: Connection, released: list[Released], now: int) -> Effects:
        effects = Effects()
        for item in released:
            # a message and a repair's stand-in are for the inbox only; a removal notice
            # is taken on arrival
            if item.type in ("message", LOST_TYPE, REMOVED_TYPE):
                continue
            mine = Effects()
            payload: Any = None
            try:
                payload = canonical.decode(item.payload.encode())
                if not isinstance(payload, dict):
                    raise PeerRefused("the payload is not an object")
                with log_store.savepoint(conn):  # one envelope's effects: all or nothing
                    self._route(conn, item, payload, now, mine)
            except PeerRefused as exc:
                effects.security.append(f"refused {item.type} {item.envelope_id} from peer "
                                        f"{item.peer}: {exc}{_about(payload, str(exc))}; "
                                        "nothing of it was kept")
                continue
            except Exception as exc:
                log.exception("%s %s from %s could not be applied", item.type,
                              item.envelope_id, item.peer)
                effects.security.append(
                    f"refused {item.type} {item.envelope_id} from peer {item.peer}: it "
                    f"could not be applied ({type(exc).__name__}); nothing of it was kept")
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
                raise PeerRefused(str(exc)) from None
            self._calls.on_place(conn, peer, request, now, effects)
        elif item.type == "call.state":
            raw = payload.get("statement")
            if not isinstance(raw, str):
                raise PeerRefused("call.state carries no statement")
            self._calls.on_state(conn, peer, raw, now, effects)
        elif item.type == "call.cancel":
            call_id = payload.get("call")
            if not isinstance(call_id, str) or not is_id(call_id):
                raise PeerRefused("call.cancel names no call id")
            self._calls.on_cancel(conn, peer, call_id, now, effects)
        elif item.type == "desks":
            self._desks.on_report(conn, peer, payload, effects)
        elif item.type == "conv.message":
            self._conversations.on_message(conn, peer, payload, now, effects)
        elif item.type == "conv.invite":
            self._conversations.on_invite(conn, peer, payload, now, effects)
        elif item.type == "conv.receipt":
            self._conversations.on_receipt(conn, peer, payload, now, effects)
        elif item.type in self._handlers:
            self._handlers[item.type](conn, peer, payload, now, effects)
        elif item.type == "key.rotate" and self._keys is not None:
            self._keys.on_rotation(conn, peer, payload, now, effects)
        elif item.type == "key.revoke" and self._keys is not None:
            self._keys.on_revocation(conn, peer, payload, now, effects)
        else:
            raise PeerRefused(f"the envelope type {item.type!r} is not understood")
