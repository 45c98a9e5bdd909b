"""The pure rules of an incident: who is in it, who may send what, and the timeline's order.

No I/O here: the service (:mod:`hotline.incidents.service`) reads the rows, asks these
functions, and writes what they decide.

Membership of one party, as one node sees it, is a small state machine::

    outside --invite (by the opener)--> invited --accept (by the invited)--> member

The opener is a member from the opening. An invitation of a party already invited is a
harmless repeat; of a member, or by anyone but the opener, it is refused. Acceptance is
refused unless the party is invited. Nothing leaves ``member``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from hotline.errors import HotlineError
from hotline.protocol.incident import Entry

#: at most this many parties in one incident (opener included)
MAX_MEMBERS = 16


class MembershipError(HotlineError):
    """A transition the membership rules refuse (error id given, status 409)."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(error_id, message, status=409)


@dataclass(frozen=True)
class Membership:
    """Who is in an incident: its opener, its members (the opener among them) and the
    parties invited who have not accepted yet."""

    opener: str
    members: frozenset[str]
    invited: frozenset[str] = frozenset()

    @classmethod
    def opened(cls, opener: str) -> Membership:
        return cls(opener, frozenset({opener}))

    def state(self, party: str) -> str:
        """``member``, ``invited`` or ``outside``."""
        if party in self.members:
            return "member"
        return "invited" if party in self.invited else "outside"

    def invite(self, by: str, party: str) -> Membership:
        """``by`` invites ``party``; raises :class:`MembershipError`."""
        if by != self.opener:
            raise MembershipError("not-opener", f"only the incident's opener "
                                                f"({self.opener}) invites parties")
        if party in self.members:
            raise MembershipError("already-member", f"{party} is already a member")
        if party in self.invited:
            return self
        if len(self.members) + len(self.invited) >= MAX_MEMBERS:
            raise MembershipError("too-many-members", f"an incident has at most "
                                                      f"{MAX_MEMBERS} parties")
        return replace(self, invited=self.invited | {party})

    def accept(self, party: str) -> Membership:
        """``party`` accepts its invitation; raises :class:`MembershipError`."""
        if party in self.members:
            raise MembershipError("already-member", f"{party} is already a member")
        if party not in self.invited:
            raise MembershipError("not-invited", f"{party} is not invited")
        return replace(self, members=self.members | {party},
                       invited=self.invited - {party})


def may_carry(membership: Membership, me: str, peer: str, author: str) -> str | None:
    """Whether entries by ``author`` may reach ``me`` from ``peer``: None if so, else why
    not. A member sends its own entries; only the opener relays another's. The author
    must be a member (``joined`` entries, by the opener, come before an author's)."""
    if me not in membership.members:
        return "this node is not a member of the incident"
    if peer not in membership.members:
        return f"{peer} is not a member of the incident"
    if author != peer and peer != membership.opener:
        return f"{peer} relays an entry by {author} but is not the incident's opener"
    if author not in membership.members:
        return f"the author {author} is not a member of the incident"
    return None


def relay_targets(membership: Membership, author: str, sent_to: Iterable[str]
                  ) -> list[str]:
    """The members the opener forwards ``author``'s entries to: those the author did not
    send them to itself (it has no link with them), never the author or the opener."""
    skip = set(sent_to) | {author, membership.opener}
    return sorted(m for m in membership.members if m not in skip)


def timeline(entries: Iterable[Entry]) -> list[Entry]:
    """Entries in timeline order: signed time, then author, then the author's number.
    Every member computes the same order from the same entries, whatever their arrival."""
    return sorted(entries, key=Entry.order_key)


def corrections(entries: Iterable[Entry]) -> dict[str, list[str]]:
    """Per corrected entry id, the ids of the entries that correct it (timeline order)."""
    out: dict[str, list[str]] = {}
    for entry in timeline(entries):
        if entry.corrects is not None:
            out.setdefault(entry.corrects, []).append(entry.id)
    return out
