"""The command line's own boundary: every argument, ``HOTLINE_*`` variable and text
read from stdin is UTF-8 text.

On POSIX, Python turns the bytes of an argument that are not UTF-8 into lone surrogates
(``surrogateescape``). Such a string reaches the node directory, the keystore, the
operator API or a URL, and fails there with a traceback (``UnicodeEncodeError``) — after
some files may already be written. So the CLI refuses it first, naming the argument,
before any command runs: a clear error, and nothing changed. Text a command reads
from stdin or a file is decoded by :func:`utf8_text`, with the same clear refusal.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from hotline.cli.common import EXIT_USAGE
from hotline.errors import HotlineError


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: str) -> str:
    """``value`` as a person can read it, its undecodable bytes as ``\\xNN``."""
    shown = value.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
    return shown if len(shown) <= 60 else shown[:57] + "..."


def check_arguments(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Raise ``bad-argument`` (exit 2) for the first argument, or ``HOTLINE_*``
    environment variable, that is not valid UTF-8 text."""
    for index, arg in enumerate(argv, start=1):
        if not _is_text(arg):
            raise HotlineError("bad-argument", f"argument {index} ({_shown(arg)}) is not "
                               "UTF-8 text", hint="give names, paths and texts as UTF-8",
                               status=EXIT_USAGE)
    for name, value in sorted(environ.items()):
        if name.startswith("HOTLINE_") and not _is_text(value):
            # the value may be a passphrase: named, never shown
            raise HotlineError("bad-argument", f"the environment variable {name} is not "
                               "UTF-8 text", status=EXIT_USAGE)


def utf8_text(data: bytes, what: str) -> str:
    """``data`` decoded as UTF-8, or ``bad-input`` (exit 2) saying which byte of
    ``what`` (``stdin``, a file's name) is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HotlineError("bad-input", f"{what} is not UTF-8 text (byte {exc.start + 1} "
                           f"is {data[exc.start]:#04x})", hint="give texts as UTF-8",
                           status=EXIT_USAGE) from None


def read_stdin() -> str:
    """All of stdin, as UTF-8 text (not the locale's guess, which turns a stray byte
    into a lone surrogate that fails later, after a traceback)."""
    return utf8_text(sys.stdin.buffer.read(), "stdin")


def read_stdin_line() -> str:
    """One line of stdin, without its line break, as UTF-8 text."""
    return utf8_text(sys.stdin.buffer.readline(), "stdin").rstrip("\r\n")
