"""The operator token: the one secret that opens the operator API.

It lives in ``DIR/operator.token`` (mode 0600) so local tools can read it; the server
compares in constant time and re-reads the file when it changes, so ``hotline token``
rotates it without a restart.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("hotline.security")


def write_token(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)
    return token


def read_token(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


class TokenChecker:
    """Checks presented tokens against the file, reloading it when its mtime changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] = (-1, -1, -1)
        self._token = ""

    def _current(self) -> str:
        try:
            st = self._path.stat()
        except FileNotFoundError:  # removed by hand: no administrator token until rewritten
            self._token, self._stamp = "", (-1, -1, -1)
            return ""
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)  # rotation replaces the inode
        if stamp != self._stamp:
            try:
                token = read_token(self._path)
            except (OSError, UnicodeDecodeError) as exc:
                # a directory, no read access, a token with non-ASCII bytes: no token
                # opens anything (not a 500 on every request), said once per change
                why = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
                log.warning("token file %s is unusable (%s): no token matches it until "
                            "it is fixed", self._path, why)
                token = ""
            self._token, self._stamp = token, stamp
        return self._token

    def check(self, presented: str) -> bool:
        current = self._current()
        return bool(current) and hmac.compare_digest(presented.encode(), current.encode())
