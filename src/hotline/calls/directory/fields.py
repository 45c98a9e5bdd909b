"""The generic leaves of directory checking: typed values, ids, durations, instants, references.

:class:`Fields` collects problems (it never stops at the first) and knows which roles,
operators and channels are defined so far; :class:`~hotline.calls.directory.check.Checker`
builds on it, one method per section of the file.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from hotline.calls.directory.model import CONSOLE, DAY_MS, MAX_TEXT, ROLE_RE
from hotline.calls.directory.problems import (
    _DURATION_HELP,
    Problem,
    _got,
    _Path,
    _render_path,
    _show,
    parse_duration,
)
from hotline.protocol.envelope import PARTY_RE

_EMAIL_RE: Final = re.compile(
    r"[^@\s\"<>(),;:\\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_HOST_RE: Final = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_MIN_MS: Final = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS
_MAX_MS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) \
    // _ONE_MS

_ROLE_RULE: Final = '1-32 of a-z, 0-9 and "-", starting with a letter'
_OPERATOR_RULE: Final = '1-32 of a-z, 0-9, ".", "_" and "-", starting with a letter'
_PARTY_RULE: Final = '1-32 of A-Z, 0-9 and "-", not starting or ending with "-", e.g. US-JS'


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



class Fields:
    """Problems found so far, and the checks of single fields that every section uses.

    ``stored`` switches the few leaves that differ between the file and the stored form:
    durations and instants are ``<name>_ms`` integers there, and ``null`` means absent.
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
