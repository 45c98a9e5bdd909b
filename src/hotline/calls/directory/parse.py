"""Reading a directory file: TOML → checked :class:`Directory`, every problem by line."""

from __future__ import annotations

import tomllib

from hotline.calls.directory.check import Checker
from hotline.calls.directory.locate import Locator, syntax_problem
from hotline.calls.directory.model import Directory
from hotline.calls.directory.problems import DirectoryError


def parse_directory(text: str, filename: str) -> Directory:
    """Parse and check a directory file; raise :class:`DirectoryError` naming every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(filename, [syntax_problem(str(exc), text)]) from None
    locator = Locator(text)
    return Checker(data, filename, stored=False, locate=locator.line_of).run()

