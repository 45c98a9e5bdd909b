"""What is wrong with a directory: problems by line and field path, and their rendering.

:class:`Problem`, the field path and the showing of values live in :mod:`hotline.problems`
(the schedules' checker shares them); they are imported here under their old names. Also
:func:`parse_duration`, which only the directory's fields use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from hotline.errors import HotlineError
from hotline.problems import Path as _Path
from hotline.problems import Problem
from hotline.problems import got as _got
from hotline.problems import render_path as _render_path
from hotline.problems import show as _show

__all__ = ["MAX_PROBLEMS", "DirectoryError", "Problem", "_Path", "_got", "_render_path",
           "_show", "parse_duration"]

#: The most problems one error lists (see :class:`DirectoryError`).
MAX_PROBLEMS: Final = 50

_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_DURATION_RE: Final = re.compile(r"([0-9]+)(ms|s|m|h)")
_DURATION_HELP: Final = 'use e.g. "90s", "2m", "1h"'


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
