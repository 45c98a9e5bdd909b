"""The demo's four node processes, run like services.

Before anything starts, :func:`preflight` checks that the ports are free and that no node
already runs on the demo's directories (``error[port-in-use]`` / ``error[node-running]``,
exit 2). :func:`start` runs each party as a ``hotline serve`` child in its own session
(so a closed terminal's SIGHUP reaches the demo, not the nodes behind its back), each
asked by the kernel to stop (SIGTERM) if the demo itself dies, even by ``kill -9``
(Linux's parent-death signal). :func:`stop_signals` turns SIGTERM and SIGHUP into
:class:`Stopped` in the demo, like Ctrl-C's ``KeyboardInterrupt``; :func:`stop` then
sends SIGTERM to every child and waits for each (SIGKILL after :data:`STOP_TIMEOUT`),
deaf to further signals until they are gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

from hotline.cli.common import EXIT_USAGE
from hotline.errors import HotlineError
from hotline.nodedir.config import CONFIG_NAME, load_config
from hotline.nodedir.lock import held


@dataclass(frozen=True)
class DemoParty:
    key: str
    party: str
    name: str


PARTIES = (
    DemoParty("us", "US-JS", "US Joint Staff"),
    DemoParty("ru", "RU-GS", "RU General Staff"),
    DemoParty("ua", "UA-GS", "UA General Staff"),
    DemoParty("pl", "PL-GS", "PL General Staff"),
)
LINKS = (("us", "ru"), ("us", "ua"), ("us", "pl"), ("pl", "ua"))
START_TIMEOUT = 30.0
#: how long a node has to shut down gracefully after SIGTERM before it is killed
STOP_TIMEOUT = 15.0
#: the signals that stop the demo (besides SIGINT, Ctrl-C)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

Procs = dict[str, "subprocess.Popen[bytes]"]


class Stopped(BaseException):
    """SIGTERM or SIGHUP reached the demo (a BaseException, so that no ``except
    Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _port_free(host: str, port: int) -> bool:
    """Whether ``port`` can be listened on, as uvicorn will (SO_REUSEADDR: a port in
    TIME_WAIT is free, one a process listens on is not)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def planned(base: Path | None, port: int) -> list[tuple[str, int]]:
    """The (host, port) each node will listen on: an existing node's own config, else
    ``port``, ``port + 1``, … on 127.0.0.1."""
    out = []
    for index, p in enumerate(PARTIES):
        node_dir = None if base is None else base / p.key
        if node_dir is not None and (node_dir / CONFIG_NAME).exists():
            config = load_config(node_dir)
            out.append((config.host, config.port))
        else:
            out.append(("127.0.0.1", port + index))
    return out


def _suggest(port: int) -> int | None:
    """A first port, 100 by 100 above ``port``, with four free ports in a row."""
    for candidate in range(port + 100, 65533, 100):
        if all(_port_free("127.0.0.1", candidate + i) for i in range(len(PARTIES))):
            return candidate
        if candidate > port + 1000:
            break
    return None


#: what a demo writes into its directory: one node directory per party, and these
DEMO_FILES = frozenset({"demo-passphrase", "console-logins.json"})


def check_base(base: Path) -> None:
    """Refuse (exit 2) a ``--dir`` the demo must not write into: a file, or a directory
    holding anything a demo did not make (a node directory, a home directory); a new
    or empty directory, or one an earlier demo made, is fine."""
    if not base.exists():
        return
    if not base.is_dir():
        raise HotlineError("bad-option", f"--dir {base} is not a directory",
                           hint="give a new or empty directory, or one an earlier demo "
                                "made", status=EXIT_USAGE)
    ours = DEMO_FILES | {p.key for p in PARTIES}
    try:
        foreign = sorted(entry.name for entry in base.iterdir() if entry.name not in ours)
    except OSError as exc:
        raise HotlineError("bad-option", f"--dir {base} cannot be read ({exc.strerror})",
                           status=EXIT_USAGE) from None
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise HotlineError("bad-option", f"--dir {base} holds files the demo did not make "
                           f"({shown}); nothing was written",
                           hint="give a new or empty directory, or one an earlier demo "
                                "made", status=EXIT_USAGE)


def preflight(base: Path | None, port: int) -> None:
    """Refuse, before anything is created or started, if ``base`` is not a directory the
    demo may write into, a node already runs on one of the demo's directories or one of
    its ports is taken (exit 2)."""
    if base is not None:
        check_base(base)
        for p in PARTIES:
            if held(base / p.key):
                raise HotlineError("node-running", f"a node already runs on {base / p.key}",
                                   hint="stop it (or the demo that started it) first, or "
                                        "give another --dir", status=EXIT_USAGE)
    for host, number in planned(base, port):
        if not _port_free(host, number):
            other = _suggest(port)
            tip = f"; try --port {other}" if other is not None else "; try another --port"
            raise HotlineError("port-in-use", f"port {number} is in use{tip}",
                               status=EXIT_USAGE)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the demo dies (Linux ``PR_SET_PDEATHSIG``;
    elsewhere nothing: the signal handlers still stop the nodes)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG


def start(base: Path, passphrase: str) -> Procs:
    """One ``hotline serve`` per party, its output in ``DIR/<key>/node.log``."""
    env = {**os.environ, "HOTLINE_PASSPHRASE": passphrase}
    procs: Procs = {}
    for p in PARTIES:
        with (base / p.key / "node.log").open("ab") as log:
            procs[p.key] = subprocess.Popen(
                [sys.executable, "-m", "hotline", "serve", "--dir", str(base / p.key),
                 "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent)
    return procs


def wait_healthy(base: Path, procs: Procs, progress: Callable[[str], None]) -> None:
    """Until every node answers ``/healthz``; ``demo-failed`` if one exits or the
    deadline passes."""
    deadline = time.monotonic() + START_TIMEOUT
    for p in PARTIES:
        config = load_config(base / p.key)
        url = f"http://{config.host}:{config.port}/healthz"
        progress(f"starting {p.party}'s node on port {config.port}…")
        while True:
            if procs[p.key].poll() is not None:
                raise HotlineError("demo-failed", f"node {p.party} exited at start; see "
                                                  f"{base / p.key / 'node.log'}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise HotlineError("demo-failed", f"node {p.party} did not start in "
                                                  f"{START_TIMEOUT:.0f} s")
            time.sleep(0.1)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Stopped` in the demo while it runs (the first
    one only: a second during the stop must not cut it short)."""
    raised = False

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Stopped(signum)

    before = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def stop(procs: Procs, console: Console | None = None) -> None:
    """SIGTERM to every node still running, then wait for each (SIGKILL after
    :data:`STOP_TIMEOUT`), ignoring SIGINT, SIGTERM and SIGHUP meanwhile."""
    quiet = {sig: signal.signal(sig, lambda *_: None)
             for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        running = [proc for proc in procs.values() if proc.poll() is None]
        if running and console is not None:
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                console.print(f"Stopping {len(running)} node(s)…")
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        for sig, old in quiet.items():
            signal.signal(sig, old)
