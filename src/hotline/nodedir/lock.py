"""The node directory's lock: one ``hotline serve`` per directory.

``hotline serve`` holds an exclusive ``flock`` on ``DIR/.lock`` for as long as it runs,
taken before it opens the keystore or the database. The kernel releases it when the
process ends, however it ends (``kill -9`` included), so a stale lock file never blocks
a restart: the file stays, the lock does not. A second ``serve`` on the same directory is
refused at once with ``error[node-running]``; ``hotline demo`` asks :func:`held` before it
starts anything. The file holds the pid of the holder, for the message only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from hotline.errors import HotlineError

LOCK_NAME = ".lock"


class NodeLock:
    """A held lock on a node directory (an open descriptor); :meth:`release` or the
    process's end lets it go."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)  # no stale pid for the next holder's refusals
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def _holder(fd: int) -> str:
    """The pid the holder wrote, as text ("" if none could be read)."""
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        if text.isdigit():
            return text
    return ""


def _unusable(path: Path, exc: OSError) -> HotlineError:
    return HotlineError("unwritable-file", f"cannot take the node directory's lock "
                                           f"{path}: {exc.strerror}",
                        hint=f"{LOCK_NAME} must be a regular file the node's user can "
                             "write (remove what is there: it holds only a pid)")


def acquire(node_dir: Path) -> NodeLock | None:
    """Take the lock of ``node_dir``. None if the directory does not exist (the caller's
    own check names that); :class:`HotlineError` ``node-running`` (exit 1) if another
    process holds it."""
    if not node_dir.is_dir():
        return None
    path = node_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # a directory, a dangling link, no write access
        raise _unusable(path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if not isinstance(exc, BlockingIOError):
            os.close(fd)
            raise _unusable(path, exc) from None
        pid = _holder(fd)
        os.close(fd)
        by = f" (pid {pid})" if pid else ""
        raise HotlineError("node-running", f"a node already runs on {node_dir}{by}",
                           hint="stop it first; one `hotline serve` per node "
                                "directory") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError as exc:  # a full disk: the lock is held all the same
        os.close(fd)
        raise _unusable(path, exc) from None
    return NodeLock(fd, path)


def held(node_dir: Path) -> bool:
    """Whether a process holds the lock of ``node_dir`` now (tested by taking it and
    letting it go at once; a directory without a lock file is not held)."""
    path = node_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:  # unreadable: whether a node runs cannot be told
        raise _unusable(path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
