"""Incidents: a shared case among parties, with one timeline every member holds.

Operator actions (through the API, console and CLI) and the handlers of what peers send
(inside the receiver's transaction, called by :class:`hotline.calls.dispatch.Dispatcher`).

Envelope types (docs/protocol.md, "Incidents"):

* ``incident.invite`` ``{"incident", "title", "opener"}``: the opener invites a party.
* ``incident.accept`` ``{"incident"}``: the invited party's operator accepted.
* ``incident.entries`` ``{"incident", "entries": [signed entry, ...], "sent_to": [party],
  "history": bool}``: entries by their author to the members it has a link with; by the
  opener, relayed to the members the author did not reach (``sent_to`` says whom the
  author reached); and, with ``history`` true, the whole timeline to a party that has
  just accepted.

Every entry is its author's signed statement (:mod:`hotline.protocol.incident`) and is
verified by every reader with the author's key: the key of its link with the author if
it has one, otherwise the key the opener's signed ``joined`` entry names. Anything a
peer sends that the rules refuse (not a member, a relay by a non-opener, a forged or
unverifiable author, a reused entry number) raises :class:`PeerRefused`: the dispatcher
undoes the whole envelope and writes one security-log line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from hotline.bounds import is_id
from hotline.calls.dispatch import Handler
from hotline.clock import Clock
from hotline.delivery.outbound import Outbound, no_link
from hotline.effects import Effects
from hotline.errors import HotlineError, PeerRefused
from hotline.incidents.model import Membership, MembershipError, may_carry, relay_targets
from hotline.incidents.noticeview import summary, timeline_notices
from hotline.protocol.envelope import PARTY_RE, new_envelope_id
from hotline.protocol.incident import (
    CONFIDENCE,
    LINK_KINDS,
    MAX_TITLE,
    OPERATOR_TYPES,
    BadEntry,
    Entry,
    parse_entry,
    sign_entry,
    verify_entry,
)
from hotline.protocol.keys import b64d, b64e
from hotline.store import incidents as store
from hotline.store.database import Database

#: the most entries one ``incident.entries`` envelope carries (a history is split)
BATCH = 64
#: the most bytes (UTF-8) of signed entries one history envelope carries: 64 entries of
#: long text in four-byte characters are over a megabyte, more than an envelope may be
#: once sealed (``protocol.envelope.DEFAULT_MAX_BYTES``); one entry is at most ~48 KB
BATCH_BYTES = 256 * 1024


def batches(statements: list[str]) -> list[list[str]]:
    """``statements`` in order, cut into runs of at most :data:`BATCH` entries and
    :data:`BATCH_BYTES` bytes (a single longer one alone)."""
    out: list[list[str]] = []
    size = 0
    for raw in statements:
        n = len(raw.encode())
        if not out or len(out[-1]) >= BATCH or size + n > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(raw)
        size += n
    return out

#: ``link_kind`` -> a function telling whether this node holds such an object
Holds = Callable[[Connection, str, str], bool]


def no_incident(incident_id: str) -> HotlineError:
    """What asking about an incident this node does not hold answers: the same for one
    that does not exist anywhere and one of which this party is not a member."""
    return HotlineError("no-incident", f"there is no incident {incident_id[:64]}",
                        status=404)


def _membership(inc: store.Incident) -> Membership:
    return Membership(inc.opener, inc.members, inc.invited)


class IncidentService:
    def __init__(self, *, me: str, outbound: Outbound, db: Database, clock: Clock,
                 holds: Holds) -> None:
        """``holds(conn, kind, id)``: whether this node holds the call, conversation or
        notification ``id`` (``kind`` ``call`` | ``conversation`` | ``notice``), for
        :meth:`link` and :meth:`add_notice`."""
        self.me = me
        self._out = outbound
        self._db = db
        self._clock = clock
        self._holds = holds

    # -- operator actions ----------------------------------------------------------------
    async def open(self, title: str, parties: list[str]) -> tuple[dict[str, Any], Effects]:
        """Open an incident and invite ``parties`` (each must be linked). Returns the
        incident as :meth:`get` gives it. Errors: ``bad-title``, ``bad-party``,
        ``no-link``, ``too-many-members``."""
        title = title.strip()
        if not title or len(title) > MAX_TITLE:
            raise HotlineError("bad-title", f"title must be 1 to {MAX_TITLE} characters")
        for party in parties:
            self._check_invitee(party)

        def work(conn: Connection) -> tuple[str, Effects]:
            now = self._clock.now_ms()
            incident_id = new_envelope_id()
            membership = Membership.opened(self.me)
            for party in dict.fromkeys(parties):
                membership = membership.invite(self.me, party)
            store.add(conn, incident_id=incident_id, title=title, opener=self.me,
                      state="member", members=membership.members,
                      invited=membership.invited, now=now)
            opened = sign_entry(keys=self._out.keys, incident=incident_id,
                                id=new_envelope_id(), author=self.me, n=1, at=now,
                                type="opened", title=title)
            store.add_entry(conn, opened, now, None)
            effects = Effects()
            for party in sorted(membership.invited):
                self._send(conn, party, "incident.invite",
                           {"incident": incident_id, "title": title, "opener": self.me},
                           now, incident_id, effects)
            return incident_id, effects
        incident_id, effects = await self._db.write(work)
        return await self.get(incident_id), effects

    def _check_invitee(self, party: str) -> None:
        if not isinstance(party, str) or not PARTY_RE.match(party) or party == self.me:
            raise HotlineError("bad-party", f"{party!r} is not another party's id")
        if not self._out.has_link(party):
            raise no_link(party)

    async def invite(self, incident_id: str, party: str) -> tuple[dict[str, Any], Effects]:
        """The opener invites one more party. Errors: ``no-incident``, ``not-opener``,
        ``already-member``, ``bad-party``, ``no-link``."""
        self._check_invitee(party)

        def work(conn: Connection) -> Effects:
            now = self._clock.now_ms()
            inc = self._member(conn, incident_id)
            membership = _membership(inc).invite(self.me, party)
            store.set_membership(conn, incident_id, membership.members, membership.invited,
                                 now, "invite", party)
            effects = Effects()
            self._send(conn, party, "incident.invite",
                       {"incident": incident_id, "title": inc.title, "opener": self.me},
                       now, incident_id, effects)
            return effects
        effects = await self._db.write(work)
        return await self.get(incident_id), effects

    async def accept(self, incident_id: str) -> tuple[dict[str, Any], Effects]:
        """Accept this party's invitation: the opener is told, and answers with the whole
        history. Errors: ``no-incident``, ``not-invited``."""
        def work(conn: Connection) -> Effects:
            now = self._clock.now_ms()
            inc = store.get(conn, incident_id)
            if inc is None:
                raise no_incident(incident_id)
            if inc.state != "invited":
                raise MembershipError("not-invited", f"this party is not (or no longer) "
                                                     f"invited to incident {incident_id}")
            store.set_membership(conn, incident_id, inc.members, inc.invited, now,
                                 "accept", self.me, state="accepted")
            effects = Effects()
            self._send(conn, inc.opener, "incident.accept", {"incident": incident_id}, now,
                       incident_id, effects)
            return effects
        effects = await self._db.write(work)
        return await self.get(incident_id), effects

    async def add(self, incident_id: str, *, kind: str, text: str,
                  confidence: str | None = None, source: str | None = None,
                  refs: list[str] | None = None, corrects: str | None = None
                  ) -> tuple[dict[str, Any], Effects]:
        """Add a fact, claim, assessment or notification (for now a notification is free
        text, with ``refs`` naming what it refers to). ``corrects``: the entry this one
        corrects (it is added to ``refs``; the old entry stays as it was). Returns the
        entry. Errors: ``bad-incident-entry`` naming the field, ``no-incident``,
        ``no-entry`` (a ref or ``corrects`` this incident does not hold)."""
        if kind not in OPERATOR_TYPES:
            raise BadEntry(f"kind must be one of {', '.join(OPERATOR_TYPES)}", "kind")
        if confidence is not None and confidence not in CONFIDENCE:
            raise BadEntry(f"confidence must be one of {', '.join(CONFIDENCE)}",
                           "confidence")
        wanted = list(dict.fromkeys([*(refs or []), *([corrects] if corrects else [])]))
        return await self._author(incident_id, check_refs=wanted, type=kind, text=text,
                                  confidence=confidence, source=source or self.me,
                                  refs=wanted, corrects=corrects)

    async def link(self, incident_id: str, link_kind: str, object_id: str
                   ) -> tuple[dict[str, Any], Effects]:
        """Link one of this node's calls, conversations or queries to the incident: a ``link``
        entry on the timeline. Errors: ``no-call`` / ``no-conversation``, as for adding."""
        if link_kind not in LINK_KINDS or not is_id(object_id):
            raise BadEntry("link must name a call, a conversation or a query id", "link")
        return await self._author(incident_id, type="link", link=object_id,
                                  link_kind=link_kind, check=(link_kind, object_id))

    async def add_notice(self, incident_id: str, notice: dict[str, Any]
                         ) -> tuple[dict[str, Any], Effects]:
        """Put a notification this node holds (``notice`` as
        :func:`hotline.forms.service.read_notice` gives it) on the timeline: a
        ``notification`` entry whose ``refs`` name it and whose text is the notification
        in its sender's language. Errors: ``no-notice``, as for :meth:`add`."""
        return await self._author(incident_id, type="notification", text=summary(notice),
                                  refs=[notice["id"]], check=("notice", notice["id"]))

    async def linked_members(self, incident_id: str) -> list[str]:
        """The members of the incident other than this party that it has a link with
        (whom a notification about it goes to). Errors: ``no-incident``, ``not-member``."""
        inc = await self._db.read(lambda conn: self._member(conn, incident_id))
        return sorted(m for m in inc.members if m != self.me and self._out.has_link(m))

    async def _author(self, incident_id: str, *, check_refs: tuple[str, ...] | list[str] = (),
                      check: tuple[str, str] | None = None, **fields: Any
                      ) -> tuple[dict[str, Any], Effects]:
        def work(conn: Connection) -> tuple[Entry, Effects]:
            now = self._clock.now_ms()
            inc = self._member(conn, incident_id)
            for ref in check_refs:
                held = store.has_entry(conn, ref) if is_id(ref) else None
                if held is None or held[0] != incident_id:
                    raise HotlineError("no-entry", f"incident {incident_id} holds no entry "
                                                   f"{ref[:64]}", status=404)
            if check is not None and not self._holds(conn, *check):
                raise HotlineError(f"no-{check[0]}", f"there is no {check[0]} {check[1]}",
                                   status=404)
            entry = sign_entry(keys=self._out.keys, incident=incident_id,
                               id=new_envelope_id(), author=self.me,
                               n=store.next_n(conn, incident_id, self.me), at=now, **fields)
            store.add_entry(conn, entry, now, None)
            effects = Effects()
            self._spread(conn, _membership(inc), [entry.raw], now, incident_id, effects)
            return entry, effects
        entry, effects = await self._db.write(work)
        return entry.as_dict(), effects

    def _member(self, conn: Connection, incident_id: str) -> store.Incident:
        inc = store.get(conn, incident_id)
        if inc is None:
            raise no_incident(incident_id)
        if inc.state != "member":
            raise MembershipError("not-member", f"this party has not joined incident "
                                                f"{incident_id} yet (accept it first)")
        return inc

    # -- sending -------------------------------------------------------------------------
    def _send(self, conn: Connection, peer: str, type_: str, payload: dict[str, Any],
              now: int, incident_id: str, effects: Effects) -> None:
        effects.send(peer, self._out.enqueue(conn, peer, type_, [payload], now, incident_id))

    def _spread(self, conn: Connection, membership: Membership, raws: list[str], now: int,
                incident_id: str, effects: Effects) -> None:
        """Our entries to every member we have a link with (the opener relays on)."""
        reach = sorted(m for m in membership.members
                       if m != self.me and self._out.has_link(m))
        for member in reach:
            self._send(conn, member, "incident.entries",
                       {"incident": incident_id, "entries": raws, "sent_to": reach,
                        "history": False}, now, incident_id, effects)

    # -- from peers (inside the receiver's transaction) ------------------------------------
    def handlers(self) -> dict[str, Handler]:
        """The envelope types this service takes, for the dispatcher."""
        return {"incident.invite": self.on_invite, "incident.accept": self.on_accept,
                "incident.entries": self.on_entries}

    def on_invite(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                  effects: Effects) -> None:
        p = payload
        if (set(p) != {"incident", "title", "opener"} or not is_id(p["incident"])
                or not isinstance(p["title"], str) or not 0 < len(p["title"]) <= MAX_TITLE
                or p["opener"] != peer):
            raise PeerRefused("incident.invite is malformed (or not from the opener)")
        inc = store.get(conn, p["incident"])
        if inc is not None:
            if inc.opener != peer:
                raise PeerRefused(f"incident {p['incident']} is another party's")
            return  # a repeat of an invitation we hold
        store.add(conn, incident_id=p["incident"], title=p["title"], opener=peer,
                  state="invited", members=frozenset({peer}), invited=frozenset({self.me}),
                  now=now)

    def on_accept(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                  effects: Effects) -> None:
        incident_id = payload.get("incident")
        if set(payload) != {"incident"} or not is_id(incident_id):
            raise PeerRefused("incident.accept is malformed")
        assert isinstance(incident_id, str)
        inc = store.get(conn, incident_id)
        if inc is None or inc.opener != self.me:
            raise PeerRefused(f"incident.accept for incident {incident_id} this node did "
                              "not open")
        membership = _membership(inc)
        if peer in membership.members:
            return  # a repeat
        try:
            membership = membership.accept(peer)
        except MembershipError as exc:
            raise PeerRefused(exc.message) from None
        link = self._out.peers.get(peer)
        if link is None:
            raise PeerRefused(f"no link with {peer}")
        store.set_membership(conn, incident_id, membership.members, membership.invited, now,
                             "joined", peer)
        joined = sign_entry(keys=self._out.keys, incident=incident_id, id=new_envelope_id(),
                            author=self.me, n=store.next_n(conn, incident_id, self.me),
                            at=now, type="joined", party=peer,
                            party_key=b64e(link.keys.sign_bytes))
        store.add_entry(conn, joined, now, None)
        # the new member gets everything from the opening; the others the joined entry
        # who is in first (the opening and every joined entry, this party's among them):
        # the new member takes a history envelope only once one says it joined, and an
        # author's entries only once it knows the author is in, whatever the batch
        rows = store.entries(conn, incident_id)
        history = [r.statement for r in rows if r.fields["type"] in ("opened", "joined")]
        history += [r.statement for r in rows if r.fields["type"] not in ("opened", "joined")]
        for batch in batches(history):
            self._send(conn, peer, "incident.entries",
                       {"incident": incident_id, "entries": batch,
                        "sent_to": [peer], "history": True}, now, incident_id, effects)
        others = Membership(self.me, membership.members - {peer}, membership.invited)
        self._spread(conn, others, [joined.raw], now, incident_id, effects)

    def on_entries(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                   effects: Effects) -> None:
        p = payload
        if (set(p) != {"incident", "entries", "sent_to", "history"}
                or not is_id(p["incident"]) or not isinstance(p["entries"], list)
                or not 0 < len(p["entries"]) <= BATCH or not isinstance(p["sent_to"], list)
                or not all(isinstance(s, str) for s in p["sent_to"])
                or not isinstance(p["history"], bool)):
            raise PeerRefused("incident.entries is malformed")
        incident_id = str(p["incident"])
        inc = store.get(conn, incident_id)
        if inc is None:
            raise PeerRefused(f"incident.entries for incident {incident_id} this node is "
                              "not in")
        membership = _membership(inc)
        # a history makes this node a member only once its operator has accepted
        joining = p["history"] and inc.state == "accepted"
        if joining:
            if peer != inc.opener:
                raise PeerRefused("a history comes only from the incident's opener")
            membership = Membership(inc.opener, membership.members | {self.me})
        elif inc.state != "member":
            raise PeerRefused(f"incident.entries for incident {incident_id}, which this "
                              "node has not joined")
        try:
            parsed = [(parse_entry(raw), str(raw)) for raw in p["entries"]]
        except BadEntry as exc:
            raise PeerRefused(exc.message) from None
        # the opener's word on who is in comes first: an author's entry may be signed a
        # moment before (by its clock) the opener signed that it joined
        order = {"opened": 0, "joined": 1}
        authors: set[str] = set()
        for obj, raw in sorted(parsed, key=lambda o: order.get(o[0]["type"], 2)):
            membership = self._take(conn, peer, incident_id, obj, raw, membership, now)
            authors.add(obj["author"])
        if joining:
            if self.me not in membership.members or not any(
                    o["type"] == "joined" and o["party"] == self.me for o, _ in parsed):
                raise PeerRefused("the history does not say this party joined")
            store.set_membership(conn, incident_id, membership.members, frozenset(), now,
                                 "member", self.me, state="member")
        elif membership.members != inc.members:
            store.set_membership(conn, incident_id, membership.members, inc.invited, now,
                                 "members", peer)
        if inc.opener == self.me and not p["history"] and authors == {peer}:
            for target in relay_targets(membership, peer, p["sent_to"]):
                if self._out.has_link(target):
                    self._send(conn, target, "incident.entries",
                               {"incident": incident_id, "entries": p["entries"],
                                "sent_to": [target], "history": False}, now, incident_id,
                               effects)

    def _take(self, conn: Connection, peer: str, incident_id: str, obj: dict[str, Any],
              raw: str, membership: Membership, now: int) -> Membership:
        """Verify and store one entry from ``peer``; returns the membership after it."""
        author = str(obj["author"])
        if obj["incident"] != incident_id:
            raise PeerRefused("an entry of another incident")
        held = store.has_entry(conn, obj["id"])
        if held is not None:
            if held != (incident_id, author, obj["n"]):
                raise PeerRefused(f"entry id {obj['id']} is another entry's")
            return membership  # a repeat (a relay and a direct copy, or a re-send)
        if author == self.me:
            raise PeerRefused("an entry claims to be by this party but is not held here")
        if obj["type"] in ("opened", "joined") and author != membership.opener:
            raise PeerRefused(f"a {obj['type']} entry by {author}, not the opener")
        why = may_carry(membership, self.me, peer, author)
        if why is not None:
            raise PeerRefused(why)
        try:
            entry = verify_entry(raw, self._key(conn, incident_id, author, str(obj["kid"])))
        except BadEntry as exc:
            raise PeerRefused(exc.message) from None
        if store.taken_n(conn, incident_id, author, entry.n) is not None:
            raise PeerRefused(f"{author} already signed entry {entry.n} of incident "
                              f"{incident_id} as another entry")
        store.add_entry(conn, entry, now, None if peer == author else peer)
        if entry.type == "joined" and entry.party is not None:
            membership = Membership(membership.opener, membership.members | {entry.party},
                                    membership.invited - {entry.party})
        return membership

    def _key(self, conn: Connection, incident_id: str, author: str, kid: str) -> bytes:
        """The author's signing key ``kid``: from our link with it, else from the
        opener's ``joined`` entry for it (which we verified with the opener's key). With
        a link, only the link's key history counts: the opener's word on the key of a
        party we hold a link with is not taken over our own (it would let the opener
        sign entries in that party's name)."""
        known = self._out.peers.keys_by_id(author)
        if known is not None:
            if kid in known:
                return known[kid].sign_bytes
            raise PeerRefused(f"{author} has no key {kid} on our link with it (the "
                              "opener's word on a linked party's key is not taken)")
        for stored in store.entries(conn, incident_id):
            f = stored.fields
            if f["type"] == "joined" and f["party"] == author and f["party_key"]:
                return b64d(f["party_key"], expect_len=32, what="party_key")
        raise PeerRefused(f"no key known for {author} (kid {kid}): no link with it, and "
                          "the opener has not said it joined")

    # -- reading -------------------------------------------------------------------------
    async def list(self) -> list[dict[str, Any]]:
        """Every incident this node holds, newest first: ``id``, ``title``, ``opener``,
        ``state`` (member | invited | accepted), ``members``, ``invited``, times in ms."""
        return [i.as_dict() for i in await self._db.read(store.all_held)]

    async def get(self, incident_id: str, lang: str = "en") -> dict[str, Any]:
        """The incident with its timeline (``entries``, in timeline order, each with
        ``received_at``, ``via``, ``corrected_by`` and ``notice``: for a ``notification``
        entry, the notification it names rendered in ``lang`` if this node holds it,
        otherwise None). Raises ``no-incident``; an invited party sees the title
        and opener only, no entries."""
        def read(conn: Connection) -> dict[str, Any]:
            inc = store.get(conn, incident_id) if is_id(incident_id) else None
            if inc is None:
                raise no_incident(incident_id)
            out = inc.as_dict()
            rows = store.entries(conn, incident_id) if inc.state == "member" else []
            corrected: dict[str, list[str]] = {}
            for row in rows:
                if row.fields["corrects"]:
                    corrected.setdefault(row.fields["corrects"], []).append(row.fields["id"])
            out["entries"] = [
                {**{k: v for k, v in row.fields.items() if k not in ("v", "kind", "sig")},
                 "received_at": row.received_at, "via": row.via,
                 "corrected_by": corrected.get(row.fields["id"], []),
                 "statement": row.statement} for row in rows]
            timeline_notices(conn, out["entries"], lang)
            return out
        return await self._db.read(read)

