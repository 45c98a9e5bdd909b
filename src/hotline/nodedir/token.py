"""The operator token: the one secret that opens the operator API.

It lives in ``DIR/operator.token`` (mode 0600) so local tools can read it; the server
compares in constant time and re-reads the file when it changes, so ``hotline token``
rotates it without a restart. A token file every user of the host may read (``o+r``),
or one that is not a regular file or cannot be reached, matches no token (one warning
per change of the file), whichever token it is: the operator's or ``/metrics``'.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
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
        self._stamp: tuple[int, ...] = (-1, -1, -1)
        self._token = ""

    def _current(self) -> str:
        try:
            st = self._path.stat()
        except FileNotFoundError:  # removed by hand: no administrator token until rewritten
            self._token, self._stamp = "", (-1, -1, -1)
            return ""
        except (OSError, ValueError) as exc:
            # a path through a file (``operator.token/x``), no search permission, a NUL:
            # unusable like an unreadable file, not a 500 on every request
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._unusable((-2, -2, -2), why)
            return ""
        # rotation replaces the inode; `chmod 600` changes only the mode
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size, st.st_mode)
        if stamp != self._stamp:
            if not stat.S_ISREG(st.st_mode):
                self._unusable(stamp, "not a regular file")
                return ""
            if st.st_mode & stat.S_IROTH:
                # a secret every local account can read is no secret (like ssh's keys):
                # refused until `chmod 600`
                self._unusable(stamp, "readable by every user of the host; chmod 600 it")
                return ""
            try:
                token = read_token(self._path)
            except (OSError, UnicodeDecodeError) as exc:
                # a directory, no read access, a token with non-ASCII bytes: no token
                # opens anything (not a 500 on every request), said once per change
                why = (exc.strerror or "unreadable") if isinstance(exc, OSError) \
                    else "not ASCII text"
                self._unusable(stamp, why)
                return ""
            self._token, self._stamp = token, stamp
        return self._token

    def _unusable(self, stamp: tuple[int, ...], why: str) -> None:
        """No token matches until the file changes; said once per change."""
        if stamp != self._stamp:
            log.warning("token file %s is unusable (%s): no token matches it until it "
                        "is fixed", self._path, why)
        self._token, self._stamp = "", stamp

    def usable(self) -> bool:
        """Whether the file holds a token that can match (a problem is logged once)."""
        return bool(self._current())

    def check(self, presented: str) -> bool:
        current = self._current()
        return bool(current) and hmac.compare_digest(presented.encode(), current.encode())
