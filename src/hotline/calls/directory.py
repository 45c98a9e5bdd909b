"""A node's directory: roles, operators, duty roster, escalation chains, channels, link policy.

An administrator writes it as TOML and applies it with ``hotline roles apply``. It decides
who rings when a peer calls one of our roles, so a mistake in it surfaces at the worst
moment: as a call that nobody answers. It is therefore checked completely at the file
boundary, and *every* problem is reported at once with the file, the line and the field
path (``roles.toml:12: chains.cgs.steps[0].wait: ...``), so one edit fixes them all.

The same checks guard :meth:`Directory.from_dict`: the stored copy is read back through them,
so a damaged or hand-edited store fails with the same kind of error instead of a crash
deep inside a call.

Durations are stored as integer milliseconds and instants as integer milliseconds since the
Unix epoch (UTC): the call state machine compares them with the node clock, which counts in
milliseconds too.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from hotline.errors import HotlineError
from hotline.protocol.envelope import PARTY_RE

ROLE_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
OPERATOR_RE: Final = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
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
MAX_PROBLEMS: Final = 50
MIN_SECRET: Final = 16
DAY_MS: Final = 24 * 3600 * 1000

DEFAULT_STAFFED_WITHIN_MS: Final = 5 * 60_000
DEFAULT_DELIVER_WITHIN_MS: Final = 30_000
DEFAULT_WAIT_MS: Final = 2 * 60_000
DEFAULT_REPEAT_MS: Final = 60_000

_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_DURATION_RE: Final = re.compile(r"([0-9]+)(ms|s|m|h)")
_DURATION_HELP: Final = 'use e.g. "90s", "2m", "1h"'
_EMAIL_RE: Final = re.compile(
    r"[^@\s\"<>(),;:\\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_HOST_RE: Final = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POS_RE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_MIN_MS: Final = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS
_MAX_MS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) \
    // _ONE_MS

_ROLE_RULE: Final = '1-32 of a-z, 0-9 and "-", starting with a letter'
_OPERATOR_RULE: Final = '1-32 of a-z, 0-9, ".", "_" and "-", starting with a letter'
_PARTY_RULE: Final = '1-32 of A-Z, 0-9 and "-", not starting or ending with "-", e.g. US-JS'

_Path = tuple[str | int, ...]


# ================================================================== the directory

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

    def on_duty(self, role: str, now_ms: int) -> tuple[str, ...]:
        """Ids of the operators on duty in ``role`` at ``now_ms``, sorted."""
        return tuple(op.id for op in sorted(self.operators.values(), key=lambda o: o.id)
                     if role in op.roles and self.duty_status(op.id, role, now_ms) == ON_DUTY)

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
        if self.alarm_role is not None:  # absent when unset: older digests stay the same
            settings["alarm_role"] = self.alarm_role
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
        return out

    @classmethod
    def from_dict(cls, data: object, source: str = "stored directory") -> Directory:
        """Read back :meth:`to_dict`'s output, checked as strictly as the file was.

        Raises :class:`DirectoryError` (lines unknown, field paths given) on anything else.
        """
        return _Checker(data, source, stored=True, locate=lambda path: None).run()


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


# ================================================================== errors

@dataclass(frozen=True)
class Problem:
    """One thing wrong with a directory: where (line, field path) and what."""

    line: int | None
    field: str
    message: str

    def render(self, filename: str) -> str:
        where = filename if self.line is None else f"{filename}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else \
            f"{where}: {self.message}"


class DirectoryError(HotlineError):
    """A directory that cannot be applied; ``problems`` lists the reasons, by line.

    At most :data:`MAX_PROBLEMS` are kept (the message says how many more there were): past
    that, the file is more likely of the wrong kind than mistyped.
    """

    def __init__(self, filename: str, problems: Iterable[Problem]) -> None:
        ordered = sorted(problems, key=lambda p: p.line or 0)
        shown = ordered[:MAX_PROBLEMS]
        lines = [p.render(filename) for p in shown]
        if len(ordered) > len(shown):
            lines.append(f"{filename}: ... and {len(ordered) - len(shown)} more problems")
        super().__init__("bad-directory", "\n".join(lines))
        self.filename = filename
        self.problems: list[Problem] = shown


# ================================================================== parsing

def parse_duration(text: str) -> int:
    """``"250ms"``, ``"90s"``, ``"2m"``, ``"1h"`` → milliseconds.

    One number and one unit, nothing else: a duration that reads two ways ("1.5m",
    "2m30s", "90") is refused rather than guessed. Raises ValueError with the message the
    directory reports.
    """
    match = _DURATION_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{_show(text)} is not a duration ({_DURATION_HELP})")
    if len(match[1]) > 15:
        raise ValueError(f"{_show(text)} is far too long a duration")
    return int(match[1]) * _UNIT_MS[match[2]]


def parse_directory(text: str, filename: str) -> Directory:
    """Parse and check a directory file; raise :class:`DirectoryError` naming every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(filename, [_syntax_problem(str(exc), text)]) from None
    locator = _Locator(text)
    return _Checker(data, filename, stored=False, locate=locator.line_of).run()


def _syntax_problem(message: str, text: str) -> Problem:
    """tomllib puts the position at the end of its message; move the line to the front."""
    match = _TOML_POS_RE.search(message)
    if match is None:  # "(at end of document)": the last line is where it went wrong
        last_line = text.count("\n") + (0 if text.endswith("\n") else 1)
        return Problem(last_line, "", f"invalid TOML: {message}")
    text = message[:match.start()]
    return Problem(int(match[1]), "", f"invalid TOML: {text} (column {match[2]})")


class _ScanError(ValueError):
    pass


class _Locator:
    """Maps a field path to the line that defines it, by scanning the TOML source.

    tomllib keeps no positions, so this scanner walks the (already valid) text once: table
    and array-of-tables headers, ``key =`` lines with dotted and quoted keys, inline tables
    and arrays (element by element, also across lines), skipping strings, so that a ``[x]``
    inside a multi-line string is not taken for a header. A field that is absent is placed
    on the line of the nearest table that contains it.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1
        self._current: _Path = ()
        self._aot: dict[_Path, int] = {}
        #: Where a table or key is written; ``implicit`` holds tables only named as prefixes.
        self.explicit: dict[_Path, int] = {}
        self.implicit: dict[_Path, int] = {}
        try:
            self._document()
        except (_ScanError, IndexError, tomllib.TOMLDecodeError):
            # Unreachable for text tomllib accepted; a partial map only makes lines coarser.
            return

    def line_of(self, path: _Path) -> int | None:
        while True:
            line = self.explicit.get(path, self.implicit.get(path))
            if line is not None:
                return line
            if not path:
                return None
            path = path[:-1]

    # -------------------------------------------------------------- scanner
    def _peek(self, ahead: int = 0) -> str:
        i = self._pos + ahead
        return self._text[i] if i < len(self._text) else ""

    def _skip_blanks(self) -> None:
        while self._peek() in (" ", "\t"):
            self._pos += 1

    def _skip_trivia(self) -> None:
        """Blanks, newlines and comments."""
        while True:
            c = self._peek()
            if c in (" ", "\t", "\r"):
                self._pos += 1
            elif c == "\n":
                self._pos += 1
                self._line += 1
            elif c == "#":
                end = self._text.find("\n", self._pos)
                self._pos = len(self._text) if end < 0 else end
            else:
                return

    def _document(self) -> None:
        while True:
            self._skip_trivia()
            c = self._peek()
            if c == "":
                return
            if c == "[":
                self._header()
            else:
                self._keyval(self._current)

    def _header(self) -> None:
        line = self._line
        is_array = self._peek(1) == "["
        self._pos += 2 if is_array else 1
        keys = self._key()
        self._skip_blanks()
        close = "]]" if is_array else "]"
        if not self._text.startswith(close, self._pos):
            raise _ScanError(self._pos)
        self._pos += len(close)
        if is_array:
            array = (*self._resolve(keys[:-1]), keys[-1])
            index = self._aot.get(array, 0)
            self._aot[array] = index + 1
            self._current = (*array, index)
        else:
            self._current = self._resolve(keys)
        for i in range(1, len(self._current)):
            self.implicit.setdefault(self._current[:i], line)
        self.explicit.setdefault(self._current, line)

    def _resolve(self, keys: Sequence[str]) -> _Path:
        """A header's keys as a path; a key naming an array of tables means its last one."""
        path: _Path = ()
        for key in keys:
            path = (*path, key)
            count = self._aot.get(path)
            if count is not None:
                path = (*path, count - 1)
        return path

    def _keyval(self, base: _Path) -> None:
        line = self._line
        keys = self._key()
        self._skip_blanks()
        if self._peek() != "=":
            raise _ScanError(self._pos)
        self._pos += 1
        self._skip_blanks()
        for i in range(1, len(keys) + 1):
            self.explicit.setdefault((*base, *keys[:i]), line)
        self._value((*base, *keys))

    def _key(self) -> list[str]:
        keys: list[str] = []
        while True:
            self._skip_blanks()
            c = self._peek()
            if c in ('"', "'"):
                raw = self._string()
                # Let tomllib decode the escapes, exactly as it did when it parsed the file.
                keys.append(next(iter(tomllib.loads(f"{raw} = 0"))))
            else:
                start = self._pos
                while (c := self._peek()) and c.isascii() and (c.isalnum() or c in "_-"):
                    self._pos += 1
                if self._pos == start:
                    raise _ScanError(self._pos)
                keys.append(self._text[start:self._pos])
            self._skip_blanks()
            if self._peek() != ".":
                return keys
            self._pos += 1

    def _string(self) -> str:
        """Skip one string of any of the four kinds, counting lines; return its source."""
        start = self._pos
        quote = self._peek()
        basic = quote == '"'
        if self._text.startswith(quote * 3, self._pos):
            self._pos += 3
            while True:
                if self._text.startswith(quote * 3, self._pos):
                    self._pos += 3
                    for _ in range(2):  # up to two quotes just before the end are content
                        if self._peek() == quote:
                            self._pos += 1
                    break
                c = self._peek()
                if c == "":
                    raise _ScanError(self._pos)
                if c == "\n" or (basic and c == "\\" and self._peek(1) == "\n"):
                    self._line += 1
                self._pos += 2 if basic and c == "\\" else 1
        else:
            self._pos += 1
            while True:
                c = self._peek()
                if c in ("", "\n"):
                    raise _ScanError(self._pos)
                self._pos += 2 if basic and c == "\\" else 1
                if c == quote:
                    break
        return self._text[start:self._pos]

    def _value(self, path: _Path) -> None:
        c = self._peek()
        if c in ('"', "'"):
            self._string()
        elif c == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip_trivia()
                if self._peek() == "]":
                    self._pos += 1
                    return
                self.explicit.setdefault((*path, index), self._line)
                self._value((*path, index))
                index += 1
                self._skip_trivia()
                if self._peek() == ",":
                    self._pos += 1
                elif self._peek() != "]":
                    raise _ScanError(self._pos)
        elif c == "{":
            self._pos += 1
            while True:
                self._skip_trivia()
                if self._peek() == "}":
                    self._pos += 1
                    return
                self._keyval(path)
                self._skip_trivia()
                if self._peek() == ",":
                    self._pos += 1
                elif self._peek() != "}":
                    raise _ScanError(self._pos)
        else:
            start = self._pos
            while (c := self._peek()) and c not in ",]}\n#":
                self._pos += 1
            if self._pos == start:
                raise _ScanError(self._pos)


# ================================================================== checking

def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime):
        return "a datetime"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    """A value as the user wrote it, quoted like TOML and cut short if long."""
    if isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
        return shown if len(shown) <= 60 else shown[:56] + '..."'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        shown = repr(value)
        return shown if len(shown) <= 30 else shown[:27] + "..."
    if isinstance(value, date | time):
        return value.isoformat()
    return _kind(value)


def _got(value: object) -> str:
    if isinstance(value, str | bool | int | float | date | time):
        return f"{_kind(value)} ({_show(value)})"
    return _kind(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _iso(ms: int) -> str:
    try:
        return (_EPOCH + ms * _ONE_MS).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return f"{ms} ms"


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.7)
    return f" (did you mean {_show(close[0])}?)" if close else ""


class _Checker:
    """Walks the parsed document, collecting problems; builds the directory if there are none.

    ``stored`` switches the few leaves that differ between the file and :meth:`to_dict`:
    durations and instants are ``<name>_ms`` integers there, and ``null`` means absent.
    Everything else, ids, references and limits, is checked by the same code.
    """

    def __init__(self, data: object, filename: str, *, stored: bool,
                 locate: Callable[[_Path], int | None]) -> None:
        self.data = data
        self.filename = filename
        self.stored = stored
        self.locate = locate
        self.problems: list[Problem] = []
        self.role_ids: set[str] = set()
        self.channel_ids: set[str] = set()
        self.operator_roles: dict[str, set[str]] = {}

    def err(self, path: _Path, message: str) -> None:
        self.problems.append(Problem(self.locate(path), _render_path(path), message))

    def run(self) -> Directory:
        top = self._table(self.data, (), ("settings", "roles", "operators", "roster",
                                          "channels", "chains", "links"))
        if top is None:
            raise DirectoryError(self.filename, self.problems)
        roles = self._roles(top)
        channels = self._channels(top)
        operators = self._operators(top)
        roster = self._roster(top)
        chains = self._chains(top)
        links = self._links(top)
        staffed_within_ms, alarm_role = self._settings(top)
        if self.problems:
            raise DirectoryError(self.filename, self.problems)
        return Directory(staffed_within_ms, roles, operators, roster, chains, channels, links,
                         alarm_role)

    # -------------------------------------------------------------- generic leaves
    def _ms_key(self, key: str) -> str:
        return f"{key}_ms" if self.stored else key

    def _table(self, value: object, path: _Path,
               allowed: Sequence[str] | None) -> dict[str, Any] | None:
        """``value`` as a table; keys outside ``allowed`` (None: any) are unknown fields."""
        if not isinstance(value, Mapping):
            self.err(path, f"must be a table, not {_got(value)}" if path else
                     f"the directory must be a table, not {_got(value)}")
            return None
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.err(path, f"has a key that is not a string: {key!r:.40}")
                continue
            if allowed is not None and key not in allowed:
                hint = _suggest(key, allowed)
                self.err((*path, key), f"unknown field {_show(key)}" + (
                    hint or f" (allowed here: {', '.join(sorted(allowed))})"))
                continue
            out[key] = item
        return out

    def _missing(self, path: _Path, what: str) -> None:
        self.err(path, f"missing: {what}")

    def _id(self, value: str, path: _Path, pattern: re.Pattern[str], what: str,
            rule: str) -> bool:
        if pattern.fullmatch(value):
            return True
        self.err(path, f"{_show(value)} is not a valid {what}: use {rule}")
        return False

    def _text(self, value: object, path: _Path, max_len: int = MAX_TEXT) -> str:
        if not isinstance(value, str):
            self.err(path, f"must be a string, not {_got(value)}")
            return ""
        if not value.strip():
            self.err(path, "must not be empty")
        elif len(value) > max_len:
            self.err(path, f"is {len(value)} characters long; at most {max_len} are allowed")
        return value

    def _choice(self, value: object, path: _Path, choices: Sequence[str]) -> str:
        if isinstance(value, str) and value in choices:
            return value
        options = ", ".join(f'"{c}"' for c in choices)
        self.err(path, f"{_show(value)} is not one of {options}")
        return choices[0]

    def _bool(self, value: object, path: _Path) -> bool:
        if isinstance(value, bool):
            return value
        self.err(path, f"must be true or false, not {_got(value)}")
        return False

    def _email(self, value: object, path: _Path) -> str:
        text = self._text(value, path, max_len=254)
        if text.strip() and len(text) <= 254 and not _EMAIL_RE.fullmatch(text):
            self.err(path, f"{_show(text)} does not look like an e-mail address "
                           "(name@example.org)")
        return text

    def _strings(self, value: object, path: _Path, check: Callable[[str, _Path], object],
                 *, empty: str | None = None) -> tuple[str, ...]:
        """An array of distinct strings, each passed to ``check`` (which reports problems).

        ``empty``, if given, is the problem reported for an empty array.
        """
        if not isinstance(value, list | tuple):
            self.err(path, f"must be an array of strings, not {_got(value)}")
            return ()
        if not value and empty is not None:
            self.err(path, empty)
        seen: list[str] = []
        for i, item in enumerate(value):
            item_path = (*path, i)
            if not isinstance(item, str):
                self.err(item_path, f"must be a string, not {_got(item)}")
            elif item in seen:
                self.err(item_path, f"{_show(item)} is listed twice")
            else:
                seen.append(item)
                check(item, item_path)
        return tuple(seen)

    def _duration(self, table: Mapping[str, Any], key: str, path: _Path, *,
                  default: int | None, required: bool = False) -> int | None:
        """A duration > 0 and ≤ 24h: a string in the file, ``<key>_ms`` when stored."""
        name = self._ms_key(key)
        field_path = (*path, name)
        value = table.get(name)
        if value is None:
            if required:
                self._missing(field_path, f'a duration, e.g. {name} = "2m"')
            return default
        if self.stored:
            if not _is_int(value):
                self.err(field_path, f"must be a whole number of milliseconds, not {_got(value)}")
                return default
            ms: int = value
        elif not isinstance(value, str):
            self.err(field_path, f"{_show(value)} is not a duration ({_DURATION_HELP}; "
                                 "a duration is a quoted string)")
            return default
        else:
            try:
                ms = parse_duration(value)
            except ValueError as exc:
                self.err(field_path, str(exc))
                return default
        if ms <= 0:
            self.err(field_path, f"{_show(value)} is not longer than zero")
        elif ms > DAY_MS:
            self.err(field_path, f"{_show(value)} is longer than the limit of 24h")
        return ms

    def _instant(self, table: Mapping[str, Any], key: str, path: _Path) -> int | None:
        """An optional point in time with a timezone, as ms since the epoch."""
        name = self._ms_key(key)
        field_path = (*path, name)
        value = table.get(name)
        if value is None:
            return None
        example = "2022-11-15T00:00:00Z"
        if self.stored:
            if not _is_int(value):
                self.err(field_path, f"must be milliseconds since 1970 (an integer), "
                                     f"not {_got(value)}")
                return None
            ms: int = value
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                self.err(field_path, f"{_show(value)} needs a timezone: add Z for UTC or an "
                                     f"offset such as +01:00 (e.g. {example})")
                return None
            ms = (value - _EPOCH) // _ONE_MS
        elif isinstance(value, str):
            self.err(field_path, f"{_show(value)} is a string: write the date and time without "
                                 f"quotes, with a timezone (e.g. {example})")
            return None
        else:
            self.err(field_path, f"must be a date and time with a timezone (e.g. {example}), "
                                 f"not {_got(value)}")
            return None
        if not _MIN_MS <= ms <= _MAX_MS:
            self.err(field_path, "is outside the years 1 to 9999 (UTC)")
            return None
        return ms

    def _role_ref(self, role: str, path: _Path) -> bool:
        if role in self.role_ids:
            return True
        self.err(path, f"undefined role {_show(role)}"
                 + (_suggest(role, self.role_ids) or " (define it under [roles])"))
        return False

    def _operator_ref(self, operator: str, path: _Path) -> bool:
        if operator in self.operator_roles:
            return True
        self.err(path, f"undefined operator {_show(operator)}"
                 + (_suggest(operator, self.operator_roles) or " (define it under [operators])"))
        return False

    def _channel_ref(self, channel: str, path: _Path) -> bool:
        if channel == CONSOLE or channel in self.channel_ids:
            return True
        self.err(path, f"undefined channel {_show(channel)}"
                 + (_suggest(channel, [CONSOLE, *self.channel_ids])
                    or ' (define it under [channels], or use "console")'))
        return False

    def _their_role(self, role: str, path: _Path) -> bool:
        return self._id(role, path, ROLE_RE, "role id", _ROLE_RULE)

    def _party(self, party: str, path: _Path) -> bool:
        return self._id(party, path, PARTY_RE, "party id", _PARTY_RULE)

    def _section(self, top: Mapping[str, Any], name: str) -> dict[str, Any]:
        """A top-level table of ids (``[roles.<id>]`` ...); absent means empty."""
        value = top.get(name)
        if value is None:
            return {}
        return self._table(value, (name,), None) or {}

    # -------------------------------------------------------------- sections
    def _settings(self, top: Mapping[str, Any]) -> tuple[int, str | None]:
        raw = top.get("settings")
        table = {} if raw is None else self._table(
            raw, ("settings",), (self._ms_key("staffed_within"), "alarm_role"))
        if table is None:
            return DEFAULT_STAFFED_WITHIN_MS, None
        ms = self._duration(table, "staffed_within", ("settings",),
                            default=DEFAULT_STAFFED_WITHIN_MS)
        alarm_role = table.get("alarm_role")
        path: _Path = ("settings", "alarm_role")
        if alarm_role is not None:
            if not isinstance(alarm_role, str):
                self.err(path, f"must be a role id, not {_got(alarm_role)}")
                alarm_role = None
            elif not self._role_ref(alarm_role, path):
                alarm_role = None
        return (DEFAULT_STAFFED_WITHIN_MS if ms is None else ms), alarm_role

    def _roles(self, top: Mapping[str, Any]) -> dict[str, Role]:
        if top.get("roles") is None:
            self._missing(("roles",), 'at least one role, e.g. [roles.duty] with '
                                      'title = { en = "Duty officer" }')
            return {}
        section = self._section(top, "roles")
        if not section and isinstance(top.get("roles"), Mapping):
            self.err(("roles",), "define at least one role")
        roles: dict[str, Role] = {}
        for rid, raw in sorted(section.items()):
            path: _Path = ("roles", rid)
            self._id(rid, path, ROLE_RE, "role id", _ROLE_RULE)
            self.role_ids.add(rid)
            table = self._table(raw, path, ("title",))
            if table is None:
                continue
            roles[rid] = Role(rid, self._titles(table.get("title"), (*path, "title")))
        return roles

    def _titles(self, value: object, path: _Path) -> dict[str, str]:
        if value is None:
            self._missing(path, 'a title in English at least, e.g. title = { en = "Duty officer" }')
            return {}
        if not isinstance(value, Mapping):
            self.err(path, f'must be a table of language -> text, e.g. {{ en = "Duty officer" }}'
                           f", not {_got(value)}")
            return {}
        table = self._table(value, path, None) or {}
        titles: dict[str, str] = {}
        for lang, text in sorted(table.items()):
            if lang not in LANGUAGES:
                self.err((*path, lang), f"unknown language {_show(lang)} "
                                        f"(use {', '.join(LANGUAGES)})")
                continue
            titles[lang] = self._text(text, (*path, lang))
        if "en" not in table:
            self._missing((*path, "en"), "the English title (en) is required")
        return titles

    def _operators(self, top: Mapping[str, Any]) -> dict[str, Operator]:
        operators: dict[str, Operator] = {}
        for oid, raw in sorted(self._section(top, "operators").items()):
            path: _Path = ("operators", oid)
            self._id(oid, path, OPERATOR_RE, "operator id", _OPERATOR_RULE)
            self.operator_roles[oid] = set()
            table = self._table(raw, path, ("name", "roles", "language", "email"))
            if table is None:
                continue
            name = table.get("name")
            if name is None:
                self._missing((*path, "name"), 'the operator\'s name, e.g. name = "A. Smith"')
                name = ""
            else:
                name = self._text(name, (*path, "name"))
            held: tuple[str, ...] = ()
            if table.get("roles") is None:
                self._missing((*path, "roles"), 'the roles held, e.g. roles = ["duty"]')
            else:
                held = self._strings(table["roles"], (*path, "roles"), self._role_ref,
                                     empty="an operator must hold at least one role")
            self.operator_roles[oid] = {role for role in held if role in self.role_ids}
            language = "en" if table.get("language") is None else \
                self._choice(table["language"], (*path, "language"), LANGUAGES)
            email = None if table.get("email") is None else \
                self._email(table["email"], (*path, "email"))
            operators[oid] = Operator(oid, name, tuple(sorted(held)), language, email)
        return operators

    def _roster(self, top: Mapping[str, Any]) -> tuple[RosterEntry, ...]:
        raw = top.get("roster")
        if raw is None:
            return ()
        if not isinstance(raw, list | tuple):
            self.err(("roster",), f"must be an array of tables ([[roster]] entries), "
                                  f"not {_got(raw)}")
            return ()
        allowed = ("operator", "role", "status", self._ms_key("from"), self._ms_key("until"))
        entries: list[RosterEntry] = []
        for i, item in enumerate(raw):
            path: _Path = ("roster", i)
            table = self._table(item, path, allowed)
            if table is None:
                continue
            operator = self._ref(table, "operator", path, self._operator_ref)
            role = self._ref(table, "role", path, self._role_ref)
            if operator in self.operator_roles and role in self.role_ids \
                    and role not in self.operator_roles[operator]:
                held = ", ".join(sorted(self.operator_roles[operator])) or "none"
                self.err((*path, "role"), f"operator {_show(operator)} does not hold role "
                                          f"{_show(role)} (their roles: {held})")
            if table.get("status") is None:
                self._missing((*path, "status"), f"one of {', '.join(STATUSES)}")
                status = OFF_DUTY
            else:
                status = self._choice(table["status"], (*path, "status"), STATUSES)
            start = self._instant(table, "from", path)
            until = self._instant(table, "until", path)
            if start is not None and until is not None and until <= start:
                self.err((*path, self._ms_key("until")),
                         f"{_iso(until)} is not after from ({_iso(start)})")
            entries.append(RosterEntry(operator, role, status, start, until))
        return tuple(entries)

    def _ref(self, table: Mapping[str, Any], key: str, path: _Path,
             check: Callable[[str, _Path], bool]) -> str:
        """A required string field that names something defined elsewhere."""
        value = table.get(key)
        if value is None:
            self._missing((*path, key), f"the {key} id")
            return ""
        if not isinstance(value, str):
            self.err((*path, key), f"must be a string, not {_got(value)}")
            return ""
        check(value, (*path, key))
        return value

    def _channels(self, top: Mapping[str, Any]) -> dict[str, ChannelSpec]:
        channels: dict[str, ChannelSpec] = {}
        for cid, raw in sorted(self._section(top, "channels").items()):
            path: _Path = ("channels", cid)
            if cid == CONSOLE:
                self.err(path, '"console" is built in and may not be redefined: '
                               "give this channel another id")
                continue
            self._id(cid, path, CHANNEL_RE, "channel id", _ROLE_RULE)
            self.channel_ids.add(cid)
            body = self._table(raw, path, None)
            if body is None:
                continue
            kind = body.get("kind")
            if kind is None:
                self._missing((*path, "kind"), 'kind = "webhook" or kind = "email"')
                continue
            if kind not in CHANNEL_KINDS:
                self.err((*path, "kind"), f'{_show(kind)} is not a channel kind '
                                          '(use "webhook" or "email")')
                continue
            if kind == "webhook":
                channels[cid] = self._webhook(cid, body, path)
            else:
                channels[cid] = self._email_channel(cid, body, path)
        return channels

    def _webhook(self, cid: str, body: Mapping[str, Any], path: _Path) -> WebhookChannelSpec:
        table = self._table(body, path, ("kind", "url", "secret")) or {}
        url = ""
        if table.get("url") is None:
            self._missing((*path, "url"), 'the http(s) URL to POST to, e.g. '
                                          'url = "https://ops.example/hook"')
        else:
            url = self._text(table["url"], (*path, "url"), max_len=2048)
            if url.strip() and len(url) <= 2048 and not _is_http_url(url):
                self.err((*path, "url"), f"{_show(url)} is not an http:// or https:// URL "
                                         "with a host")
        secret = ""
        if table.get("secret") is None:
            self._missing((*path, "secret"), f"an HMAC key of at least {MIN_SECRET} characters")
        else:
            secret = self._text(table["secret"], (*path, "secret"), max_len=1024)
            if 0 < len(secret) < MIN_SECRET:
                self.err((*path, "secret"), f"is {len(secret)} characters long; an HMAC key "
                                            f"needs at least {MIN_SECRET}")
        return WebhookChannelSpec(cid, url, secret)

    def _email_channel(self, cid: str, body: Mapping[str, Any],
                       path: _Path) -> EmailChannelSpec:
        table = self._table(body, path, ("kind", "host", "port", "sender", "to", "starttls"))
        table = table or {}
        host = ""
        if table.get("host") is None:
            self._missing((*path, "host"), 'the SMTP server, e.g. host = "127.0.0.1"')
        else:
            host = self._text(table["host"], (*path, "host"), max_len=253)
            if host.strip() and len(host) <= 253 and not _is_host(host):
                self.err((*path, "host"), f"{_show(host)} is not a host name or IP address")
        port = 0
        if table.get("port") is None:
            self._missing((*path, "port"), "the SMTP port, e.g. port = 25")
        elif not _is_int(table["port"]) or not 1 <= table["port"] <= 65535:
            self.err((*path, "port"), f"must be a port number from 1 to 65535, "
                                      f"not {_got(table['port'])}")
        else:
            port = table["port"]
        sender = ""
        if table.get("sender") is None:
            self._missing((*path, "sender"),
                          'the From address, e.g. sender = "hotline@example.org"')
        else:
            sender = self._email(table["sender"], (*path, "sender"))
        to: tuple[str, ...] = ()
        if table.get("to") is None:
            self._missing((*path, "to"), "the recipients (to = [] if only the rung operators "
                                         "should get it)")
        else:
            to = self._strings(table["to"], (*path, "to"), self._email)
        starttls = False if table.get("starttls") is None else \
            self._bool(table["starttls"], (*path, "starttls"))
        return EmailChannelSpec(cid, host, port, sender, tuple(sorted(to)), starttls)

    def _chains(self, top: Mapping[str, Any]) -> dict[str, Chain]:
        chains: dict[str, Chain] = {}
        for role, raw in sorted(self._section(top, "chains").items()):
            path: _Path = ("chains", role)
            if role not in self.role_ids:
                self.err(path, f"undefined role {_show(role)}: a chain belongs to a role "
                               "defined under [roles]" + _suggest(role, self.role_ids))
            table = self._table(raw, path, ("steps", self._ms_key("repeat_every")))
            if table is None:
                continue
            repeat = self._duration(table, "repeat_every", path, default=None)
            chains[role] = Chain(role, self._steps(table.get("steps"), (*path, "steps")), repeat)
        return chains

    def _steps(self, raw: object, path: _Path) -> tuple[Step, ...]:
        if raw is None:
            self._missing(path, f"1 to {MAX_STEPS} steps ([[{_render_path(path)}]] tables)")
            return ()
        if not isinstance(raw, list | tuple):
            self.err(path, f"must be an array of tables ([[{_render_path(path)}]]), "
                           f"not {_got(raw)}")
            return ()
        if not raw:
            self.err(path, "a chain needs at least one step")
        elif len(raw) > MAX_STEPS:
            self.err(path, f"has {len(raw)} steps; at most {MAX_STEPS} are allowed")
        allowed = ("ring", "operators", "channels", self._ms_key("wait"))
        steps: list[Step] = []
        for i, item in enumerate(raw):
            step_path: _Path = (*path, i)
            table = self._table(item, step_path, allowed)
            if table is None:
                continue
            ring: tuple[str, ...] = ()
            if table.get("ring") is None:
                self._missing((*step_path, "ring"), 'the roles to ring, e.g. ring = ["duty"]')
            else:
                ring = self._strings(table["ring"], (*step_path, "ring"), self._role_ref)
            operators: tuple[str, ...] = ()
            if table.get("operators") is not None:
                operators = self._strings(table["operators"], (*step_path, "operators"),
                                          self._operator_ref)
            if isinstance(table.get("ring"), list | tuple) and not table["ring"] \
                    and not table.get("operators"):
                self.err((*step_path, "ring"), "rings nobody: name at least one role here, "
                                               "or operators in `operators`")
            channels: tuple[str, ...] = (CONSOLE,)
            if table.get("channels") is not None:
                channels = self._strings(table["channels"], (*step_path, "channels"),
                                         self._channel_ref,
                                         empty='no channel: leave it out for ["console"]')
            wait = self._duration(table, "wait", step_path, default=None, required=True)
            steps.append(Step(ring, operators, channels, wait or 0))
        return tuple(steps)

    def _links(self, top: Mapping[str, Any]) -> dict[str, LinkPolicy]:
        links: dict[str, LinkPolicy] = {}
        allowed = ("may_call", "accept", self._ms_key("deliver_within"), "late", "fallback")
        for peer, raw in sorted(self._section(top, "links").items()):
            path: _Path = ("links", peer)
            self._party(peer, path)
            table = self._table(raw, path, allowed)
            if table is None:
                continue
            may_call = self._role_map(table, "may_call", path, self._role_ref, self._their_role)
            accept = self._role_map(table, "accept", path, self._their_role, self._role_ref)
            deliver = self._duration(table, "deliver_within", path,
                                     default=DEFAULT_DELIVER_WITHIN_MS)
            late = "deliver" if table.get("late") is None else \
                self._choice(table["late"], (*path, "late"), LATE_POLICIES)
            fallback = self._fallbacks(table.get("fallback"), (*path, "fallback"))
            links[peer] = LinkPolicy(peer, may_call, accept, deliver or 0, late, fallback)
        return links

    def _role_map(self, table: Mapping[str, Any], key: str, path: _Path,
                  check_key: Callable[[str, _Path], bool],
                  check_item: Callable[[str, _Path], bool]) -> dict[str, tuple[str, ...]]:
        field_path = (*path, key)
        raw = table.get(key)
        if raw is None:
            self._missing(field_path, f"a table of role -> roles, e.g. {key} = "
                                      '{ duty = ["duty"] }, or {} for none')
            return {}
        out: dict[str, tuple[str, ...]] = {}
        for role, roles in sorted((self._table(raw, field_path, None) or {}).items()):
            check_key(role, (*field_path, role))
            out[role] = tuple(sorted(self._strings(roles, (*field_path, role), check_item)))
        return out

    def _fallbacks(self, raw: object, path: _Path) -> tuple[Fallback, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list | tuple):
            self.err(path, f"must be an array of tables ([[{_render_path(path)}]]), "
                           f"not {_got(raw)}")
            return ()
        fallbacks: list[Fallback] = []
        for i, item in enumerate(raw):
            fb_path: _Path = (*path, i)
            table = self._table(item, fb_path, ("on", "call", "alert", "notify"))
            if table is None:
                continue
            on: tuple[str, ...] = ()
            if table.get("on") is None:
                self._missing((*fb_path, "on"), f"the outcomes it handles, some of "
                                                f"{', '.join(OUTCOMES)}")
            else:
                on = self._strings(table["on"], (*fb_path, "on"), self._outcome,
                                   empty=f"name at least one of {', '.join(OUTCOMES)}")
            lists: dict[str, tuple[str, ...]] = {}
            for key, check in (("call", self._counterpart), ("alert", self._role_ref),
                               ("notify", self._party)):
                value = table.get(key)
                lists[key] = () if value is None else \
                    self._strings(value, (*fb_path, key), check)
            if not any(table.get(key) for key in ("call", "alert", "notify")):
                self.err(fb_path, "does nothing: give at least one of call, alert or notify")
            fallbacks.append(Fallback(tuple(sorted(on)), lists["call"],
                                      tuple(sorted(lists["alert"])),
                                      tuple(sorted(lists["notify"]))))
        return tuple(fallbacks)

    def _outcome(self, value: str, path: _Path) -> bool:
        if value in OUTCOMES:
            return True
        self._choice(value, path, OUTCOMES)
        return False

    def _counterpart(self, value: str, path: _Path) -> bool:
        role, at, party = value.partition("@")
        if not at or not ROLE_RE.fullmatch(role) or not PARTY_RE.fullmatch(party):
            self.err(path, f'{_show(value)} is not "role@PARTY" (e.g. "ccp-do@RU-GS")')
            return False
        return True


def _render_path(path: _Path) -> str:
    """``("chains", "cgs", "steps", 0, "wait")`` → ``chains.cgs.steps[0].wait``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY_RE.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            out += f".{key}" if out else key
    return out


def _is_http_url(url: str) -> bool:
    if any(c.isspace() or not c.isprintable() for c in url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError when out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return _HOST_RE.fullmatch(host) is not None
    return True
