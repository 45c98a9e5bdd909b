"""What is wrong with a directory: problems by line and field path, and their rendering.

Also the few helpers every part of the checking shares: the field path type, showing a
value as the user wrote it, and :func:`parse_duration`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Final

from hotline.errors import HotlineError

#: The most problems one error lists (see :class:`DirectoryError`).
MAX_PROBLEMS: Final = 50

_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_DURATION_RE: Final = re.compile(r"([0-9]+)(ms|s|m|h)")
_DURATION_HELP: Final = 'use e.g. "90s", "2m", "1h"'
_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")

#: A field's place in the document: table keys and array indexes, outermost first.
_Path = tuple[str | int, ...]


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
