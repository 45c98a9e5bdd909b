"""Reading a directory file: TOML → checked :class:`Directory`, every problem by line."""

from __future__ import annotations

import time
import tomllib

from hotline.calls.directory.check import Checker
from hotline.calls.directory.locate import Locator, syntax_problem
from hotline.calls.directory.model import Directory
from hotline.calls.directory.problems import DirectoryError


def parse_directory(text: str, filename: str, now_ms: int | None = None) -> Directory:
    """Parse and check a directory file; raise :class:`DirectoryError` naming every problem.

    Schedules are checked for gaps from ``now_ms`` (default: the system clock's now)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(filename, [syntax_problem(str(exc), text)]) from None
    locator = Locator(text)
    checker = Checker(data, filename, stored=False, locate=locator.line_of)
    checker.now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return checker.run()

