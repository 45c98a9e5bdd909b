"""A TCP proxy that can cut the line: partitions between real node processes.

The machine has no ``tc netem``; a node's peers reach it through this proxy instead
(its address is the endpoint in the node's link offer), and a test calls
:meth:`FaultProxy.partition` to refuse new connections and cut open ones, then
:meth:`FaultProxy.heal` to let traffic through again.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class FaultProxy:
    def __init__(self, target_port: int, listen_port: int = 0) -> None:
        self._target = ("127.0.0.1", target_port)
        self._server = socket.create_server(("127.0.0.1", listen_port))
        self.port = int(self._server.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._blocked = False
        self._holding = False
        self._released = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def partition(self) -> None:
        with self._lock:
            self._blocked = True
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        with self._lock:
            self._blocked = False

    def hold_replies(self) -> None:
        """Keep back the answers on connections opened from now on."""
        with self._lock:
            self._holding = True
            self._released.clear()

    def release(self) -> None:
        """Let the kept-back answers through, and answers on new connections."""
        with self._lock:
            self._holding = False
            self._released.set()

    def close(self) -> None:
        self._closed = True
        self.partition()
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                blocked, holding = self._blocked, self._holding
            if blocked:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b, hold in ((client, upstream, False), (upstream, client, holding)):
                threading.Thread(target=self._pump, args=(a, b, hold), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, hold: bool = False) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if hold:
                    self._released.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._open.discard(sock)
