"""Desks: whether each role a peer may call is staffed right now, shared over the link.

A caller should see "duty desk staffed" *before* calling. Each node reports to each
linked peer the roles that peer may call (from the link policy's ``accept``), with their
titles and whether an on-duty operator holding the role has been seen within
``staffed_within``. A report is sent only when it changes (and once after start), as an
ordinary envelope, so it arrives exactly once and in order with everything else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from hotline.calls import duty
from hotline.calls.directory import ROLE_RE, Directory
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.delivery.outbound import Outbound
from hotline.effects import Effects
from hotline.errors import HotlineError, LinkError, PeerRefused
from hotline.store import directory as directory_store
from hotline.store.database import Database
from hotline.store.directory import Desk

log = logging.getLogger("hotline.desks")
MAX_DESKS = 200


def report_for(directory: Directory, peer: str, last_seen: dict[str, int],
               holders: Mapping[str, tuple[str, ...]], now: int) -> list[dict[str, Any]]:
    """The desks ``peer`` may call, staffed or not, in a stable order. ``holders``: who
    is on duty in each role now (:func:`hotline.calls.duty.on_duty`)."""
    policy = directory.policy_for(peer)
    if policy is None:
        return []
    callers: dict[str, set[str]] = {}
    for their_role, ours in policy.accept.items():
        for role in ours:
            callers.setdefault(role, set()).add(their_role)
    report = []
    for role in sorted(callers):
        if role not in directory.roles:
            continue
        staffed = any(now - last_seen.get(op, -(10**15)) <= directory.staffed_within_ms
                      for op in holders.get(role, ()))
        report.append({"role": role, "titles": dict(directory.roles[role].titles),
                       "staffed": staffed, "callers": sorted(callers[role])})
    return report


def parse_report(payload: dict[str, Any]) -> list[dict[str, Any]]:
    desks = payload.get("desks")
    if set(payload) != {"desks", "at"} or not isinstance(desks, list) \
            or len(desks) > MAX_DESKS or type(payload["at"]) is not int:
        raise ValueError("desks report has the wrong shape")
    for desk in desks:
        ok = (isinstance(desk, dict) and set(desk) == {"role", "titles", "staffed", "callers"}
              and isinstance(desk["role"], str) and ROLE_RE.match(desk["role"])
              and isinstance(desk["staffed"], bool)
              and isinstance(desk["titles"], dict)
              and all(isinstance(k, str) and isinstance(v, str)
                      for k, v in desk["titles"].items())
              and isinstance(desk["callers"], list)
              and all(isinstance(c, str) for c in desk["callers"]))
        if not ok:
            raise ValueError("desks report has a malformed desk")
    return desks


class DeskService:
    def __init__(self, *, outbound: Outbound, registry: Registry, db: Database,
                 clock: Clock) -> None:
        self._out = outbound
        self._registry = registry
        self._db = db
        self._clock = clock
        #: the last report sent, per (party, link generation): a link accepted again
        #: after a removal (which dropped our desks on the party's side) is told afresh
        self._sent: dict[tuple[str, int], list[dict[str, Any]]] = {}

    async def publish(self) -> Effects:
        """Send each peer its report if it changed since the last one sent."""
        await self._registry.reload()
        directory = self._registry.current
        now = self._clock.now_ms()

        def read(conn: Connection) -> tuple[dict[str, int], dict[str, tuple[str, ...]]]:
            return directory_store.last_seen(conn), {
                role: duty.on_duty(conn, directory, role, now) for role in directory.roles}
        seen, holders = await self._db.read(read)
        changed = {}
        for link in self._out.peers.all():
            key = (link.party, link.generation)
            report = report_for(directory, link.party, seen, holders, now)
            if not report and key not in self._sent:
                continue  # no policy for this peer: nothing to tell it
            if self._sent.get(key) != report:
                changed[key] = report
        if not changed:
            return Effects()

        def work(conn: Connection) -> tuple[Effects, list[tuple[str, int]]]:
            effects = Effects()
            told = []
            for (peer, generation), report in changed.items():
                try:
                    effects.send(peer, self._out.enqueue(conn, peer, "desks",
                                                         [{"desks": report, "at": now}], now))
                except LinkError:
                    continue  # removed a moment ago: nothing to tell it
                told.append((peer, generation))
            return effects, told
        effects, told = await self._db.write(work)
        self._sent.update((key, changed[key]) for key in told)
        return effects

    def on_report(self, conn: Connection, peer: str, payload: dict[str, Any],
                  effects: Effects) -> None:
        try:
            desks = parse_report(payload)
        except ValueError as exc:
            raise PeerRefused(str(exc)) from None
        directory_store.replace_desks(conn, peer, [
            Desk(peer, d["role"], d["titles"], d["staffed"], d["callers"], payload["at"])
            for d in desks])

    async def seen(self, operator: str) -> None:
        """An operator showed a sign of life (console, CLI, API)."""
        await self._registry.reload()
        if operator not in self._registry.current.operators:
            raise HotlineError("no-operator", f"there is no operator {operator!r}", status=404)
        now = self._clock.now_ms()
        await self._db.write(lambda conn: directory_store.seen(conn, operator, now))

    async def desks(self) -> list[dict[str, Any]]:
        rows = await self._db.read(directory_store.desks)
        return [d.as_dict() for d in rows]
