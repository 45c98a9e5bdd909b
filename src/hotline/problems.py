"""A problem with an input file, by line and field path, and how values are shown in one.

Shared by every checker of a TOML file (the directory, the schedules in it): a field's path
(table keys and array indexes, outermost first), :class:`Problem`, and showing a value as
the user wrote it. Pure: no imports from the rest of Hotline, so any checker can use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Final

_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")

#: A field's place in the document: table keys and array indexes, outermost first.
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where (line, field path) and what."""

    line: int | None
    field: str
    message: str

    def render(self, filename: str) -> str:
        where = filename if self.line is None else f"{filename}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else \
            f"{where}: {self.message}"


def render_path(path: Path) -> str:
    """``("chains", "cgs", "steps", 0, "wait")`` → ``chains.cgs.steps[0].wait``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY_RE.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            out += f".{key}" if out else key
    return out


def kind(value: object) -> str:
    """A value's TOML kind, with its article: ``"a string"``, ``"an array"``."""
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


def show(value: object) -> str:
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
    return kind(value)


def got(value: object) -> str:
    """What was found instead: the kind, and the value itself when it is short."""
    if isinstance(value, str | bool | int | float | date | time):
        return f"{kind(value)} ({show(value)})"
    return kind(value)
