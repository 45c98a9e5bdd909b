"""Where a field is written in a TOML directory file: line numbers for problems.

tomllib keeps no positions, so :class:`Locator` scans the source once more; a syntax error
from tomllib is turned into a :class:`Problem` on its line by :func:`syntax_problem`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from typing import Final

from hotline.calls.directory.problems import Problem, _Path

_TOML_POS_RE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def syntax_problem(message: str, text: str) -> Problem:
    """tomllib puts the position at the end of its message; move the line to the front."""
    match = _TOML_POS_RE.search(message)
    if match is None:  # "(at end of document)": the last line is where it went wrong
        last_line = text.count("\n") + (0 if text.endswith("\n") else 1)
        return Problem(last_line, "", f"invalid TOML: {message}")
    text = message[:match.start()]
    return Problem(int(match[1]), "", f"invalid TOML: {text} (column {match[2]})")


class _ScanError(ValueError):
    pass


class Locator:
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
