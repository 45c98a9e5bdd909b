"""What a committed transaction asks the running node to do next.

Work functions run inside the single writer and must not touch anything outside their
connection (a failed batch is re-run item by item). So they *return* their effects —
envelopes for the peers' senders, journal entries for the live stream, "a timer or a
notification row changed" — and the node carries them out only after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.store.journal import Entry
from hotline.store.outbox import Pending


@dataclass
class Effects:
    outgoing: list[tuple[str, list[Pending]]] = field(default_factory=list)
    journal: list[Entry] = field(default_factory=list)
    timers: bool = False
    notifications: bool = False
    #: security-log lines of refusals decided inside the transaction: written once, after
    #: the commit (a work function may be run twice; its refusal is one line)
    security: list[str] = field(default_factory=list)
    #: a link was removed, or a peer's keys changed (rotation, revocation), in the
    #: transaction: the node reloads its links
    links: bool = False

    def send(self, peer: str, pending: list[Pending]) -> None:
        if pending:
            self.outgoing.append((peer, pending))

    def merge(self, other: Effects) -> Effects:
        self.outgoing.extend(other.outgoing)
        self.journal.extend(other.journal)
        self.timers = self.timers or other.timers
        self.notifications = self.notifications or other.notifications
        self.security.extend(other.security)
        self.links = self.links or other.links
        return self

    def __bool__(self) -> bool:
        return bool(self.outgoing or self.journal or self.timers or self.notifications
                    or self.security or self.links)
