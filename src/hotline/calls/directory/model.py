"""The directory's model: roles, operators, duty roster, chains, channels, link policy.

Plain frozen dataclasses, built only by the checker (:mod:`.check`) from a file or from the
stored copy, so every instance is valid. :meth:`Directory.to_dict` is the canonical stored
form; :meth:`Directory.from_dict` reads it back through the same checks as the file.

Durations are integer milliseconds and instants integer milliseconds since the Unix epoch
(UTC): the call state machine compares them with the node clock, which counts in
milliseconds too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from hotline.errors import HotlineError
from hotline.schedules.final import final_schedule
from hotline.schedules.model import Override, Schedule, Shift
from hotline.schedules.parse import schedule_to_table

# "\Z", not "$", which also matches before a final newline (a 33-character role)
ROLE_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,31}\Z")
OPERATOR_RE: Final = re.compile(r"^[a-z][a-z0-9._-]{0,31}\Z")
CHANNEL_RE: Final = ROLE_RE

LANGUAGES: Final = ("en", "ar", "ru", "uk", "pl")
STATUSES: Final = ("on-duty", "off-duty", "unavailable")
ON_DUTY: Final = "on-duty"
OFF_DUTY: Final = "off-duty"
OUTCOMES: Final = ("unanswered", "undeliverable", "declined")
LATE_POLICIES: Final = ("deliver", "expire")
CHANNEL_KINDS: Final = ("webhook", "email")
#: The built-in channel: the operator console (and SSE). Always there, never configured.
CONSOLE: Final = "console"

MAX_TEXT: Final = 120
MAX_STEPS: Final = 20
MIN_SECRET: Final = 16
DAY_MS: Final = 24 * 3600 * 1000

DEFAULT_STAFFED_WITHIN_MS: Final = 5 * 60_000
DEFAULT_DELIVER_WITHIN_MS: Final = 30_000
DEFAULT_WAIT_MS: Final = 2 * 60_000
DEFAULT_REPEAT_MS: Final = 60_000
#: How far ahead a gap in a schedule raises the alarm ``duty-gap``: a day.
DEFAULT_GAP_ALARM_HORIZON_MS: Final = DAY_MS
MIN_GAP_HORIZON_MS: Final = 60_000
#: How far ahead ``roles apply`` looks for gaps in a schedule (what the console shows).
GAP_CHECK_HORIZON_MS: Final = 14 * DAY_MS


@dataclass(frozen=True)
class Role:
    """A function that answers for the party (``cgs``), whoever holds it at the moment."""

    id: str
    titles: dict[str, str]


@dataclass(frozen=True)
class Operator:
    """A person who can hold roles; ``email`` is where email channels reach them."""

    id: str
    name: str
    roles: tuple[str, ...]
    language: str
    email: str | None


@dataclass(frozen=True)
class RosterEntry:
    """One duty window: ``status`` holds from ``from_ms`` (inclusive) to ``until_ms``."""

    operator: str
    role: str
    status: str
    from_ms: int | None
    until_ms: int | None

    def covers(self, now_ms: int) -> bool:
        return (self.from_ms is None or self.from_ms <= now_ms) and \
            (self.until_ms is None or now_ms < self.until_ms)


@dataclass(frozen=True)
class Step:
    """One rung of a chain: who rings, on which channels, and how long before the next."""

    ring: tuple[str, ...]
    operators: tuple[str, ...]
    channels: tuple[str, ...]
    wait_ms: int


@dataclass(frozen=True)
class Chain:
    """The escalation of a call to ``role``; without ``repeat_every_ms`` it ends unanswered."""

    role: str
    steps: tuple[Step, ...]
    repeat_every_ms: int | None


@dataclass(frozen=True)
class WebhookChannelSpec:
    """An HTTP POST per ring, signed with HMAC(``secret``) so the receiver can trust it."""

    kind: ClassVar[str] = "webhook"
    id: str
    url: str
    secret: str


@dataclass(frozen=True)
class EmailChannelSpec:
    """A mail per ring via SMTP; the rung operators' own addresses are added to ``to``."""

    kind: ClassVar[str] = "email"
    id: str
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    starttls: bool


ChannelSpec = WebhookChannelSpec | EmailChannelSpec


@dataclass(frozen=True)
class Fallback:
    """What the caller does when a call on a link ends with one of the outcomes in ``on``."""

    on: tuple[str, ...]
    call: tuple[str, ...]
    alert: tuple[str, ...]
    notify: tuple[str, ...]


@dataclass(frozen=True)
class LinkPolicy:
    """Which roles may call across one link, which calls we accept, and what a failure does."""

    peer: str
    may_call: dict[str, tuple[str, ...]]
    accept: dict[str, tuple[str, ...]]
    deliver_within_ms: int
    late: str
    fallback: tuple[Fallback, ...]


def default_chain(role: str) -> Chain:
    """A role without a chain rings just itself on the console, every minute after two."""
    return Chain(role, (Step((role,), (), (CONSOLE,), DEFAULT_WAIT_MS),), DEFAULT_REPEAT_MS)


@dataclass(frozen=True)
class Directory:
    """The whole directory of one node, validated; see :func:`parse_directory`."""

    staffed_within_ms: int
    roles: dict[str, Role]
    operators: dict[str, Operator]
    roster: tuple[RosterEntry, ...]
    chains: dict[str, Chain]
    channels: dict[str, ChannelSpec]
    links: dict[str, LinkPolicy]
    #: The role rung (first step of its chain) when the node raises an alarm.
    alarm_role: str | None = None
    #: Duty schedules by role (``[schedules.<role>]``); a role without one is staffed by
    #: its roster entries and overrides alone.
    schedules: dict[str, Schedule] = field(default_factory=dict)
    #: How far ahead a gap in a schedule raises the alarm ``duty-gap``.
    gap_alarm_horizon_ms: int = DEFAULT_GAP_ALARM_HORIZON_MS

    def chain_for(self, role: str) -> Chain:
        """The chain of ``role``; the default one (ring the role itself) if none is written."""
        chain = self.chains.get(role)
        if chain is not None:
            return chain
        if role not in self.roles:
            raise HotlineError("no-role", f"there is no role {role!r} in this node's directory",
                               status=404)
        return default_chain(role)

    def policy_for(self, peer: str) -> LinkPolicy | None:
        return self.links.get(peer)

    def may_call(self, our_role: str, peer: str, their_role: str) -> bool:
        """Whether ``our_role`` may place a call to ``their_role@peer`` (no policy: no)."""
        policy = self.links.get(peer)
        return policy is not None and their_role in policy.may_call.get(our_role, ())

    def accepts(self, peer: str, their_role: str, our_role: str) -> bool:
        """Whether a call from ``their_role@peer`` to ``our_role`` is let through."""
        policy = self.links.get(peer)
        return policy is not None and our_role in policy.accept.get(their_role, ())

    def duty_status(self, operator: str, role: str, now_ms: int) -> str:
        """The status of ``operator`` in ``role`` at ``now_ms``.

        The last roster entry whose window contains ``now_ms`` wins, so a later line can
        carve an exception (a sick day) out of a standing entry without editing it. An
        operator-role pair that no entry covers is off duty: nobody is on duty by accident.
        """
        status = OFF_DUTY
        for entry in self.roster:
            if entry.operator == operator and entry.role == role and entry.covers(now_ms):
                status = entry.status
        return status

    def roster_on_duty(self, role: str, now_ms: int) -> tuple[str, ...]:
        """Who the ``[[roster]]`` entries alone put on duty in ``role`` at ``now_ms``,
        sorted: the lowest layer of the role's final schedule."""
        return tuple(op.id for op in sorted(self.operators.values(), key=lambda o: o.id)
                     if role in op.roles and self.duty_status(op.id, role, now_ms) == ON_DUTY)

    def final_schedule(self, role: str, from_ms: int, until_ms: int,
                       overrides: Sequence[Override] = ()) -> list[Shift]:
        """Who holds ``role`` over ``[from_ms, until_ms)``: its schedule's layers over the
        roster, under ``overrides`` (those naming an operator who no longer holds the role
        are left out). Contiguous shifts; a gap is ``Shift(holders=(), source="gap")``.
        The node asks through :mod:`hotline.calls.duty`, which reads the overrides."""
        mine = [o for o in overrides if o.role == role
                and (o.unavailable or self._holds(o.operator, role))]
        return final_schedule(self.schedules.get(role), mine, from_ms, until_ms,
                              lambda ms: self.roster_on_duty(role, ms),
                              base_edges=self.roster_edges(role), role=role)

    def roster_edges(self, role: str) -> set[int]:
        """The instants at which the roster's answer for ``role`` may change."""
        return {t for e in self.roster if e.role == role for t in (e.from_ms, e.until_ms)
                if t is not None}

    def on_duty(self, role: str, now_ms: int, overrides: Sequence[Override] = ()
                ) -> tuple[str, ...]:
        """Ids of the operators on duty in ``role`` at ``now_ms``: the holders of the final
        schedule's shift at that instant (see :meth:`final_schedule`); ``()`` in a gap."""
        return self.final_schedule(role, now_ms, now_ms + 1, overrides)[0].holders

    def _holds(self, operator: str | None, role: str) -> bool:
        op = self.operators.get(operator or "")
        return op is not None and role in op.roles

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able, canonical form: the same directory always gives the same dict.

        It mirrors the file's layout (so :meth:`from_dict` reuses the file's checks), with
        durations as ``<name>_ms`` and instants as ``from_ms``/``until_ms`` integers. Every
        table's keys are in sorted order and set-like lists are sorted, so equal directories
        serialise to equal bytes (``apply`` compares digests to be idempotent); lists whose
        order means something (roster, steps, fallbacks, the roles, operators and channels
        of a step, counterparts to call) keep it.
        """
        settings: dict[str, Any] = {"staffed_within_ms": self.staffed_within_ms}
        # absent when unset (or the default): older digests stay the same
        if self.alarm_role is not None:
            settings["alarm_role"] = self.alarm_role
        if self.gap_alarm_horizon_ms != DEFAULT_GAP_ALARM_HORIZON_MS:
            settings["gap_alarm_horizon_ms"] = self.gap_alarm_horizon_ms
        out: dict[str, Any] = _canonical({
            "settings": settings,
            "roles": {rid: {"title": dict(role.titles)} for rid, role in self.roles.items()},
            "operators": {oid: {"name": op.name, "roles": sorted(op.roles),
                                "language": op.language, "email": op.email}
                          for oid, op in self.operators.items()},
            "roster": [{"operator": e.operator, "role": e.role, "status": e.status,
                        "from_ms": e.from_ms, "until_ms": e.until_ms} for e in self.roster],
            "channels": {cid: _channel_dict(spec) for cid, spec in self.channels.items()},
            "chains": {rid: {"repeat_every_ms": chain.repeat_every_ms,
                             "steps": [{"ring": list(s.ring), "operators": list(s.operators),
                                        "channels": list(s.channels), "wait_ms": s.wait_ms}
                                       for s in chain.steps]}
                       for rid, chain in self.chains.items()},
            "links": {peer: {"may_call": {k: sorted(v) for k, v in p.may_call.items()},
                             "accept": {k: sorted(v) for k, v in p.accept.items()},
                             "deliver_within_ms": p.deliver_within_ms, "late": p.late,
                             "fallback": [{"on": sorted(f.on), "call": list(f.call),
                                           "alert": sorted(f.alert), "notify": sorted(f.notify)}
                                          for f in p.fallback]}
                      for peer, p in self.links.items()},
        })
        if self.schedules:  # absent when none: older digests stay the same
            out["schedules"] = _canonical({role: schedule_to_table(schedule)
                                           for role, schedule in self.schedules.items()})
        return out

    @classmethod
    def from_dict(cls, data: object, source: str = "stored directory") -> Directory:
        """Read back :meth:`to_dict`'s output, checked as strictly as the file was.

        Raises :class:`DirectoryError` (lines unknown, field paths given) on anything else.
        """
        # The checker builds Directory instances, so it imports this module: import it here.
        from hotline.calls.directory.check import Checker

        return Checker(data, source, stored=True, locate=lambda path: None).run()


def _channel_dict(spec: ChannelSpec) -> dict[str, Any]:
    if isinstance(spec, WebhookChannelSpec):
        return {"kind": spec.kind, "url": spec.url, "secret": spec.secret}
    return {"kind": spec.kind, "host": spec.host, "port": spec.port, "sender": spec.sender,
            "to": sorted(spec.to), "starttls": spec.starttls}


def _canonical(value: Any) -> Any:
    """Tables with their keys in sorted order, all the way down."""
    if isinstance(value, dict):
        return {key: _canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value
