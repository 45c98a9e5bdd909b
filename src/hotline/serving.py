"""How ``hotline serve`` stops: the same graceful shutdown on SIGINT, SIGTERM and SIGHUP.

uvicorn handles SIGINT and SIGTERM itself, then raises the signal again once it has shut
down, so the process ends "killed by SIGTERM" (exit 143 to a shell); SIGHUP (a closed
terminal, ``systemctl reload`` by habit) it leaves to the default action, which kills
the process without shutting down. :class:`Server` treats all three alike — stop
accepting, finish the requests in flight (up to ``timeout_graceful_shutdown``), run the
lifespan's shutdown (supervised tasks cancelled, database closed) — and returns instead
of raising the signal again: ``hotline serve`` then exits 0. A second SIGINT during the
shutdown forces it, as in uvicorn.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Generator

import uvicorn

#: the signals that stop a node gracefully
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Server(uvicorn.Server):
    """uvicorn's server, stopped gracefully by any of :data:`STOP_SIGNALS`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only
            return
        before = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def interrupt_on_stop_signals() -> None:
    """Until :class:`Server` runs (opening the keystore, checking the log), SIGTERM and
    SIGHUP interrupt like Ctrl-C (``KeyboardInterrupt``: exit 130, nothing half-written,
    the directory's lock released with the process)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
