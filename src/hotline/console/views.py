"""What each console page shows, decided from the node's data and who is looking.

Pure functions over plain dicts (as the services return them), so the rules — which
desks an operator may call, which incoming calls ring for them, how a call's history
reads — are testable without a browser or a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hotline.calls.directory import Directory
from hotline.status import AlarmStatus, TaskStatus, tasks_down

#: Call states in which the callee's desk is being rung and may answer.
RINGING_STATES = frozenset({"delivered", "ringing"})
#: States after which nothing more happens on a call.
ENDED_STATES = frozenset({"answered", "declined", "unanswered", "cancelled", "expired",
                          "refused"})


@dataclass(frozen=True)
class Viewer:
    """The logged-in operator, as the console needs them on every page."""

    operator: str
    name: str
    roles: tuple[str, ...]
    lang: str
    csrf: str


def title_in(titles: Mapping[str, str], lang: str, fallback: str) -> str:
    return titles.get(lang) or titles.get("en") or next(iter(titles.values()), fallback)


@dataclass(frozen=True)
class DeskView:
    peer: str
    role: str
    title: str
    staffed: bool
    as_roles: tuple[str, ...]

    @property
    def address(self) -> str:
        return f"{self.role}@{self.peer}"


def callable_desks(desks: Iterable[Mapping[str, Any]], directory: Directory,
                   viewer: Viewer) -> list[DeskView]:
    """The counterpart desks this operator may call, each with the operator's roles that
    may place the call: the peer must list the role as a caller (its ``accept`` policy,
    sent with the desk report) and our own link policy must allow it."""
    out = []
    for desk in desks:
        peer, role = str(desk["party"]), str(desk["role"])
        callers = set(desk.get("callers") or ())
        as_roles = tuple(r for r in viewer.roles
                         if r in callers and directory.may_call(r, peer, role))
        if as_roles:
            out.append(DeskView(peer=peer, role=role,
                                title=title_in(desk.get("titles") or {}, viewer.lang, role),
                                staffed=bool(desk.get("staffed")), as_roles=as_roles))
    # by party, then role: a tile never moves when a desk's staffing changes
    return sorted(out, key=lambda d: (d.peer, d.role))


@dataclass(frozen=True)
class PartyDesks:
    """One linked party's callable desks, under its name as a heading."""

    party: str
    name: str
    desks: tuple[DeskView, ...]


def by_party(desks: Iterable[DeskView], names: Mapping[str, str]) -> list[PartyDesks]:
    """``desks`` grouped by party in a stable order (party id, then role id), each group
    named from ``names`` (party id → display name; the id where unknown)."""
    groups: dict[str, list[DeskView]] = {}
    for desk in sorted(desks, key=lambda d: (d.peer, d.role)):
        groups.setdefault(desk.peer, []).append(desk)
    return [PartyDesks(party=p, name=names.get(p) or p, desks=tuple(ds))
            for p, ds in groups.items()]


def rung_roles(call: Mapping[str, Any]) -> set[str]:
    """Every role of ours rung on an incoming call so far: the one called and each
    escalation step's (a ``ringing`` entry names the step's roles, comma-separated)."""
    roles = {str(call["callee"]).split("@")[0]}
    for entry in call.get("history", ()):
        if entry.get("state") == "ringing" and entry.get("role"):
            roles.update(str(entry["role"]).split(","))
    return roles


@dataclass(frozen=True)
class Alarm:
    call: Mapping[str, Any]
    as_roles: tuple[str, ...]


def alarms_for(calls: Iterable[Mapping[str, Any]], viewer: Viewer) -> list[Alarm]:
    """Incoming calls now ringing a role this operator holds, oldest first."""
    out = []
    for call in calls:
        if call.get("direction") != "in" or call.get("state") not in RINGING_STATES:
            continue
        held = tuple(r for r in viewer.roles if r in rung_roles(call))
        if held:
            out.append(Alarm(call=call, as_roles=held))
    return sorted(out, key=lambda a: a.call.get("placed_at") or 0)


def role_titles(call: Mapping[str, Any], desks: Iterable[Mapping[str, Any]],
                directory: Directory, lang: str) -> dict[str, str]:
    """Titles for an incoming call's two addresses, where known: the caller's from the
    peer's desk reports (a peer reports the roles we may call back), ours from our
    directory. The alarm shows them beside the ids."""
    titles: dict[str, str] = {}
    caller_role, _, peer = str(call["caller"]).partition("@")
    for desk in desks:
        if desk.get("party") == peer and desk.get("role") == caller_role:
            titles[str(call["caller"])] = title_in(desk.get("titles") or {}, lang, caller_role)
    callee_role = str(call["callee"]).split("@")[0]
    role = directory.roles.get(callee_role)
    if role is not None:
        titles[str(call["callee"])] = title_in(role.titles, lang, callee_role)
    return titles


def received_by(calls: Iterable[Mapping[str, Any]], viewer: Viewer,
                limit: int = 15) -> list[Mapping[str, Any]]:
    """Incoming calls that rang a role this operator holds, newest first (the callee's
    side of the board)."""
    roles = set(viewer.roles)
    out = [c for c in calls if c.get("direction") == "in" and rung_roles(c) & roles]
    return out[:limit]


def placed_by(calls: Iterable[Mapping[str, Any]], viewer: Viewer,
              limit: int = 15) -> list[Mapping[str, Any]]:
    """Outgoing calls placed from a role this operator holds, newest first."""
    roles = set(viewer.roles)
    out = [c for c in calls if c.get("direction") == "out"
           and str(c.get("caller", "")).split("@")[0] in roles]
    return out[:limit]


@dataclass(frozen=True)
class StepRole:
    """One role a step names: its id and its title in the viewer's language (None when
    not known here)."""

    id: str
    title: str | None


@dataclass(frozen=True)
class Step:
    state: str
    role: str | None
    operator: str | None
    at: int | None
    signed_by: str | None
    verified: bool
    reason: str | None
    #: the step's roles with their titles (a ringing step may ring several)
    roles: tuple[StepRole, ...] = ()
    #: who a ringing step rang, as its signer's duty schedule named them; empty when
    #: nobody was on duty
    who: tuple[str, ...] = ()


def steps_of(call: Mapping[str, Any],
             titles: Mapping[str, str] | None = None) -> list[Step]:
    """A call's history as the console shows it; ``titles`` maps the role ids of the
    call's other party (caller's side) or of our own (callee's side) to titles."""
    titles = titles or {}
    out = []
    for e in call.get("history", ()):
        role = e.get("role")
        roles = tuple(StepRole(r, titles.get(r)) for r in str(role).split(",") if r) \
            if role else ()
        out.append(Step(state=str(e.get("state")), role=role, operator=e.get("operator"),
                        at=e.get("at"), signed_by=e.get("signed_by"),
                        verified=bool(e.get("verified")), reason=e.get("reason"),
                        roles=roles, who=tuple(e.get("who") or ())))
    return out


def titles_for(call: Mapping[str, Any], desks: Iterable[Mapping[str, Any]],
               directory: Directory, lang: str) -> dict[str, str]:
    """Titles of the roles a call's steps name: the callee's roles. On the callee's
    side (``direction`` ``in``) they are ours, from our directory; on the caller's side
    the peer's, from its desk reports (which list the desks it offers us)."""
    if call.get("direction") == "in":
        return {rid: title_in(r.titles, lang, rid) for rid, r in directory.roles.items()}
    peer = str(call.get("peer") or str(call.get("callee", "")).partition("@")[2])
    return {str(d["role"]): title_in(d.get("titles") or {}, lang, str(d["role"]))
            for d in desks if d.get("party") == peer and d.get("titles")}


def ended_at(call: Mapping[str, Any]) -> int | None:
    """When the call reached a final state (the elapsed clock stops there)."""
    if call.get("state") not in ENDED_STATES:
        return None
    ats = [e.get("at") for e in call.get("history", ()) if e.get("state") == call["state"]]
    return ats[-1] if ats and ats[-1] is not None else None



@dataclass(frozen=True)
class Banner:
    """The node's own trouble, shown on every page to every operator: the standing
    alarms, oldest first, and the supervised tasks that are down (failed, waiting to be
    restarted)."""

    alarms: tuple[AlarmStatus, ...]
    down: tuple[TaskStatus, ...]

    @property
    def version(self) -> str:
        """Changes whenever what the banner shows changes (a raise, a clear, a repeat, a
        task going down or up), and only then: an unchanged banner is not swapped in, so
        it is not announced again."""
        alarms = "".join(f"{a.cause}:{a.first_at}:{a.count};" for a in self.alarms)
        down = "".join(f"{t.name}:{t.last_error};" for t in self.down)
        return f"{alarms}|{down}"


def banner(tasks: Iterable[TaskStatus], alarms: Iterable[AlarmStatus]) -> Banner:
    standing = sorted(alarms, key=lambda a: (a.first_at or "", a.cause))
    return Banner(alarms=tuple(standing),
                  down=tuple(tasks_down(tasks)))


def ms_of(stamp: str | None) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 time with its offset, as the status
    reports carry them (for the console's own date formatting)."""
    if not stamp:
        return None
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)
