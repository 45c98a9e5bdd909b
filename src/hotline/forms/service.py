"""Sending, receiving and reading formatted notifications ("notices").

A notice is checked against this node's template before anything is written; then, in
one transaction, it is stored, logged and put in the outbox for each recipient as a
``notice`` envelope (exactly once, in order per link, like a conversation message).
The receiver checks it against *its own* copy of ``(template, version)``: if it takes
it, it stores it and signs a *delivered* receipt; if not (a template or version it
does not have, a field its copy refuses), it stores nothing of it and signs a *refused*
receipt naming why, and writes one security-log line. People sign *read* and
*acknowledged* receipts. Every receipt travels back as a ``notice.receipt`` envelope
and is verified with the signer's key before it is stored.

Shapes (:meth:`NoticeService.get`)::

    {"id", "party", "template", "version", "lang", "fields": {...}, "recipients": [...],
     "role", "operator", "sent_at", "received_at",
     "receipts": [{"party", "receipt", "operator", "role", "reason", "at", "verified"}]}
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Connection, select

from hotline.bounds import MAX_TIME_MS, is_id
from hotline.calls.directory import OPERATOR_RE, ROLE_RE
from hotline.calls.dispatch import Handler
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.delivery.outbound import Outbound, no_link
from hotline.effects import Effects
from hotline.errors import HotlineError, PeerRefused
from hotline.forms import model
from hotline.peers import receipt_statement
from hotline.protocol import canonical
from hotline.protocol.envelope import PARTY_RE, new_envelope_id
from hotline.protocol.notice import sign_notice_receipt, verify_notice_receipt
from hotline.store import journal
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.schema import notice_receipts, notices

NOTICE_TYPE = "notice"
RECEIPT_TYPE = "notice.receipt"
MAX_RECIPIENTS = 16
_PAYLOAD = {"notice", "template", "version", "lang", "fields", "recipients", "role",
            "operator", "sent_at"}


def _name_ok(value: Any, pattern: re.Pattern[str]) -> bool:
    return value is None or (isinstance(value, str) and pattern.match(value) is not None)


def _recipients_ok(value: Any) -> bool:
    """1..MAX_RECIPIENTS distinct party ids, as :meth:`NoticeService.send` sends them."""
    return (isinstance(value, list) and 0 < len(value) <= MAX_RECIPIENTS
            and all(isinstance(r, str) and PARTY_RE.match(r) for r in value)
            and len(set(value)) == len(value))


def _row_dict(row: Any) -> dict[str, Any]:
    return {"id": row.id, "party": row.party, "template": row.template,
            "version": int(row.version), "lang": row.lang, "fields": json.loads(row.fields),
            "recipients": json.loads(row.recipients), "role": row.role,
            "operator": row.operator, "sent_at": int(row.sent_at),
            "received_at": None if row.received_at is None else int(row.received_at)}


def read_notice(conn: Connection, notice_id: str) -> dict[str, Any] | None:
    """One notice with its receipts (shape in the module docstring), or None; for other
    domain services (incidents, exports) inside their own transactions."""
    row = conn.execute(select(notices).where(notices.c.id == notice_id)).first()
    if row is None:
        return None
    out = _row_dict(row)
    out["receipts"] = [
        {"party": r.party, "receipt": r.kind, "operator": r.operator, "role": r.role,
         "reason": r.reason, "at": int(r.at), "verified": bool(r.verified)}
        for r in conn.execute(select(notice_receipts)
                              .where(notice_receipts.c.notice_id == notice_id)
                              .order_by(notice_receipts.c.at, notice_receipts.c.kind))]
    return out


class NoticeService:
    def __init__(self, *, me: str, outbound: Outbound, registry: Registry, db: Database,
                 clock: Clock) -> None:
        self.me = me
        self._out = outbound
        self._registry = registry
        self._db = db
        self._clock = clock

    def _check_role(self, as_role: str | None, operator: str | None) -> None:
        if as_role is None:
            return
        self._registry.check_role(as_role, operator)

    # -- operator actions ----------------------------------------------------------------
    async def send(self, template_id: str, fields: Any, to: list[str], *, lang: str = "en",
                   as_role: str | None = None, operator: str | None = None
                   ) -> tuple[dict[str, Any], Effects]:
        """Check, store and send one notice to every party of ``to``. Refused before
        anything is written: an unknown template (``unknown-template``), a missing or
        invalid field (:class:`~hotline.forms.model.FieldError` naming it), a recipient
        that is not a party id or has no link (``bad-party`` / ``no-link``)."""
        template = model.latest(template_id)
        checked = model.validate(template, fields)
        if lang not in model.LANGUAGES:
            raise model.FieldError("bad-field", "lang",
                                   f"must be one of {', '.join(model.LANGUAGES)}")
        recipients = sorted(set(to))
        if not recipients or len(recipients) > MAX_RECIPIENTS:
            raise HotlineError("bad-recipients", f"a notification goes to 1 to "
                                                 f"{MAX_RECIPIENTS} parties")
        for party in recipients:
            if not PARTY_RE.match(party) or party == self.me:
                raise HotlineError("bad-party", f"{party!r} is not another party's id")
            if not self._out.has_link(party):
                raise no_link(party)
        await self._registry.reload()
        self._check_role(as_role, operator)

        def work(conn: Connection) -> tuple[dict[str, Any], Effects]:
            now = self._clock.now_ms()
            notice_id = new_envelope_id()
            conn.execute(notices.insert().values(
                id=notice_id, party=self.me, template=template.id, version=template.version,
                lang=lang, fields=canonical.encode(checked).decode(),
                recipients=json.dumps(recipients), role=as_role, operator=operator,
                sent_at=now, received_at=None))
            payload = {"notice": notice_id, "template": template.id,
                       "version": template.version, "lang": lang, "fields": checked,
                       "recipients": recipients, "role": as_role, "operator": operator,
                       "sent_at": now}
            self._log(conn, notice_id, self.me, payload, now)
            effects = Effects()
            for party in recipients:
                effects.send(party, self._out.enqueue(conn, party, NOTICE_TYPE, [payload],
                                                      now, notice_id))
            notice = read_notice(conn, notice_id)
            assert notice is not None
            effects.journal.append(journal.append(conn, "notice", notice_id,
                                                  {"notice": notice, "event": "sent"}, now))
            return notice, effects
        return await self._db.write(work)

    async def receipt(self, notice_id: str, kind: str, as_role: str, operator: str | None
                      ) -> tuple[dict[str, Any], Effects]:
        """A person's *read* or *acknowledged* receipt of a notice received here:
        ``{"notice", "receipt", "signed": bool, "by": {"operator", "role", "at"}}`` —
        ``signed`` False when this party had already signed that receipt (one per party
        and kind: the signature is the party's), ``by`` naming who did and when."""
        if kind not in ("read", "acknowledged"):
            raise HotlineError("bad-receipt", "a person's receipt is 'read' or 'acknowledged'")
        await self._registry.reload()
        self._check_role(as_role, operator)

        def work(conn: Connection) -> tuple[dict[str, Any], Effects]:
            now = self._clock.now_ms()
            row = conn.execute(select(notices).where(notices.c.id == notice_id)).first()
            if row is None or row.party == self.me:
                raise HotlineError("no-notice", f"there is no received notification "
                                                f"{notice_id}", status=404)
            effects = Effects()
            signed = self._give(conn, notice_id, row.party, kind, now, effects,
                                operator=operator, role=as_role)
            given = conn.execute(select(notice_receipts).where(
                notice_receipts.c.notice_id == notice_id, notice_receipts.c.party == self.me,
                notice_receipts.c.kind == kind)).first()
            by = None if given is None else {"operator": given.operator, "role": given.role,
                                             "at": int(given.at)}
            return {"notice": notice_id, "receipt": kind, "signed": signed, "by": by}, effects
        return await self._db.write(work)

    def _give(self, conn: Connection, notice_id: str, author: str, kind: str, now: int,
              effects: Effects, *, operator: str | None = None, role: str | None = None,
              reason: str | None = None) -> bool:
        """Sign, store (but a refusal), log and send back one receipt; False if this
        party had signed that kind already (nothing more is done)."""
        known = conn.execute(select(notice_receipts.c.at).where(
            notice_receipts.c.notice_id == notice_id, notice_receipts.c.party == self.me,
            notice_receipts.c.kind == kind)).first()
        if known is not None:
            return False
        stmt = sign_notice_receipt(notice=notice_id, author=author, signer=self.me,
                                   receipt=kind, at=now, keys=self._out.keys,
                                   operator=operator, role=role, reason=reason)
        if kind != "refused":  # a refused notice is stored nowhere, nor its receipt
            conn.execute(notice_receipts.insert().values(
                notice_id=notice_id, party=self.me, kind=kind, operator=operator, role=role,
                reason=reason, at=now, statement=stmt.raw, verified=1))
        log_store.append_one(conn, "notice-receipt", {
            "notice": notice_id, "signer": self.me, "receipt": kind,
            "statement": stmt.raw}, now, notice_id)
        if self._out.has_link(author):
            effects.send(author, self._out.enqueue(conn, author, RECEIPT_TYPE,
                                                   [{"statement": stmt.raw}], now, notice_id))
        return True

    @staticmethod
    def _log(conn: Connection, notice_id: str, party: str, payload: dict[str, Any],
             now: int) -> None:
        """The ``notice`` entry: every column of the row as stored (fields as checked,
        recipients sorted), which the start-up state check compares the row with."""
        log_store.append_one(conn, "notice", {
            "notice": notice_id, "party": party, "template": payload["template"],
            "version": payload["version"], "lang": payload["lang"],
            "recipients": sorted(payload["recipients"]), "fields": payload["fields"],
            "role": payload["role"], "operator": payload["operator"],
            "sent_at": payload["sent_at"]}, now, notice_id)

    # -- from peers (inside the receiver's transaction) ------------------------------------
    def handlers(self) -> dict[str, Handler]:
        """The envelope types this service takes, for the dispatcher."""
        return {NOTICE_TYPE: self.on_notice, RECEIPT_TYPE: self.on_receipt}

    def on_notice(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                  effects: Effects) -> None:
        p = payload
        if (set(p) != _PAYLOAD or not is_id(p["notice"]) or type(p["sent_at"]) is not int
                or not 0 <= p["sent_at"] <= MAX_TIME_MS
                or not isinstance(p["template"], str)
                or not model.TEMPLATE_ID.fullmatch(p["template"])
                or type(p["version"]) is not int
                or not _recipients_ok(p["recipients"]) or self.me not in p["recipients"]
                or not isinstance(p["lang"], str)
                or not _name_ok(p["role"], ROLE_RE) or not _name_ok(p["operator"],
                                                                     OPERATOR_RE)):
            # the sender's claims are kept as they came: each must fit its column on
            # every store (PostgreSQL refuses a 40-character role, SQLite keeps it)
            raise PeerRefused("notice is malformed")
        taken = conn.execute(select(notices.c.party).where(notices.c.id == p["notice"])
                             ).first()
        if taken is not None:
            if taken.party != peer:
                raise PeerRefused("the notice id is another party's notice")
            return  # the same notice again: a harmless repeat
        try:
            template = model.get(p["template"], p["version"])
            checked = model.validate(template, p["fields"])
            if p["lang"] not in model.LANGUAGES:
                raise model.FieldError("bad-field", "lang", "is not a language of ours")
        except HotlineError as exc:
            # refused, and said so to the sender, signed; nothing of the notice is kept
            reason = f"{exc.error_id}: {exc.message}"
            self._give(conn, p["notice"], peer, "refused", now, effects, reason=reason)
            effects.security.append(f"refused notice {p['notice']} from peer {peer}: "
                                    f"{reason}; nothing of it was kept")
            return
        role, operator, recipients = p["role"], p["operator"], p["recipients"]
        conn.execute(notices.insert().values(
            id=p["notice"], party=peer, template=template.id, version=template.version,
            lang=p["lang"], fields=canonical.encode(checked).decode(),
            recipients=json.dumps(sorted(recipients)), role=role, operator=operator,
            sent_at=p["sent_at"], received_at=now))
        self._log(conn, p["notice"], peer, {**p, "fields": checked}, now)
        self._give(conn, p["notice"], peer, "delivered", now, effects)
        notice = read_notice(conn, p["notice"])
        effects.journal.append(journal.append(conn, "notice", p["notice"],
                                              {"notice": notice, "event": "received"}, now))

    def on_receipt(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                   effects: Effects) -> None:
        stmt = receipt_statement(self._out.peers, peer, payload, "notice.receipt",
                                 verify_notice_receipt)
        raw = str(payload["statement"])  # verified: the string as signed
        row = conn.execute(select(notices.c.party, notices.c.recipients)
                           .where(notices.c.id == stmt.notice)).first()
        if (row is None or row.party != self.me or stmt.author != self.me
                or peer not in json.loads(row.recipients)):
            raise PeerRefused(f"a receipt for notice {stmt.notice}, which is not ours to "
                              f"{peer}")
        known = conn.execute(select(notice_receipts.c.at).where(
            notice_receipts.c.notice_id == stmt.notice, notice_receipts.c.party == peer,
            notice_receipts.c.kind == stmt.receipt)).first()
        if known is not None:
            return
        conn.execute(notice_receipts.insert().values(
            notice_id=stmt.notice, party=peer, kind=stmt.receipt, operator=stmt.operator,
            role=stmt.role, reason=stmt.reason, at=stmt.at, statement=raw, verified=1))
        log_store.append_one(conn, "notice-receipt", {
            "notice": stmt.notice, "signer": peer, "receipt": stmt.receipt,
            "statement": raw}, now, stmt.notice)
        effects.journal.append(journal.append(conn, "notice", stmt.notice, {
            "notice": {"id": stmt.notice}, "event": "receipt", "party": peer,
            "receipt": stmt.receipt, "reason": stmt.reason, "at": stmt.at}, now))

    # -- reading -------------------------------------------------------------------------
    async def get(self, notice_id: str) -> dict[str, Any]:
        """One notice held here (sent or received); ``no-notice`` (404) otherwise."""
        def read(conn: Connection) -> dict[str, Any]:
            notice = read_notice(conn, notice_id)
            if notice is None:
                raise HotlineError("no-notice", f"there is no notification {notice_id}",
                                   status=404)
            return notice
        return await self._db.read(read)

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest notices, sent and received, newest first (without receipts)."""
        def read(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(select(notices).order_by(notices.c.sent_at.desc(),
                                                         notices.c.id).limit(limit))
            return [_row_dict(r) for r in rows]
        return await self._db.read(read)
