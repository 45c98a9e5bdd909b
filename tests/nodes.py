"""Real node processes for integration and end-to-end tests.

A :class:`NodeProcess` is a node directory (created with the same code ``hotline init``
uses) and, while started, a ``python -m hotline serve`` child process on a free localhost
port. Nothing is mocked: envelopes cross real sockets between real processes into a real
SQLite or PostgreSQL database.
"""

from __future__ import annotations

import glob
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from hotline.admin import accept_link, init_node, make_link_offer, read_offer
from hotline.nodedir.config import KEYSTORE_NAME, TOKEN_NAME, load_config
from hotline.nodedir.keystore import read_public, unlock
from hotline.protocol.keys import PartyKeys, PublicKeys
from hotline.store.engine import create_engine

PASSPHRASE = "integration-test-passphrase"
PG_ADMIN = os.environ.get("HOTLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.encode())


def create_pg_database() -> str:
    name = f"hotline_test_{secrets.token_hex(6)}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: where Debian's ``libfaketime`` package puts the library (HOTLINE_TEST_LIBFAKETIME overrides)
FAKETIME_LIBRARIES = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                      "/usr/local/lib/faketime/libfaketime.so.1")


def faketime_library() -> Path:
    """libfaketime's path, or a clear failure: the clock-fault tests are never skipped."""
    override = os.environ.get("HOTLINE_TEST_LIBFAKETIME")
    patterns = (override,) if override else FAKETIME_LIBRARIES
    for pattern in patterns:
        for found in sorted(glob.glob(pattern)):
            return Path(found)
    raise AssertionError("libfaketime is not installed, and the clock-fault tests need it: "
                         "`apt-get install faketime` (.ci/run does), or point "
                         "HOTLINE_TEST_LIBFAKETIME at libfaketime.so.1")


class FakeWallClock:
    """The wall clock of one node process, stepped while it runs (libfaketime).

    Only the wall clock moves: ``FAKETIME_DONT_FAKE_MONOTONIC`` keeps the monotonic clock
    real, as when NTP or an operator steps a machine's clock. The offset lives in a file
    that the process re-reads on every clock call (``FAKETIME_NO_CACHE``), in libfaketime's
    relative syntax (``+3600``, ``-120``, ``+0``: seconds); :meth:`set` replaces the file
    atomically, so the process never reads half of it. File times stay real
    (``NO_FAKE_STAT``).

    ``FAKETIME_FORCE_MONOTONIC_FIX=0``: libfaketime 0.9.10 turns that "fix" on by itself
    on current glibc, and with an unfaked monotonic clock it then turns every timed wait
    on a monotonic condition variable (CPython's GIL hand-over among them) into an
    immediate time-out: threads spin for the GIL and the node stalls for up to seconds
    (measured: about 1 s per call placed, 20 times the system time), which no real
    clock step does. Python's ``time.sleep`` fails (EINVAL) under
    ``FAKETIME_DONT_FAKE_MONOTONIC`` (libfaketime issue 426); ``hotline serve`` never
    calls it."""

    def __init__(self, path: Path, offset_s: int = 0) -> None:
        self.path = path
        self.offset_s = offset_s
        self.set(offset_s)

    def set(self, offset_s: int) -> None:
        """Step the wall clock to real time + ``offset_s`` seconds."""
        partial = self.path.with_name(self.path.name + ".new")
        partial.write_text(f"{offset_s:+d}\n")
        os.replace(partial, self.path)
        self.offset_s = offset_s

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(faketime_library()),
                "FAKETIME_TIMESTAMP_FILE": str(self.path), "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_FORCE_MONOTONIC_FIX": "0",
                "NO_FAKE_STAT": "1"}

    @staticmethod
    def clean_up(pid: int) -> None:
        """libfaketime's shared memory of a process that did not exit normally (a leftover
        would trouble a later process that gets the same pid)."""
        for name in (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}"):
            Path("/dev/shm", name).unlink(missing_ok=True)


class NodeProcess:
    def __init__(self, directory: Path, party: str, db: str | None, *,
                 create: bool = True, endpoints: list[str] | None = None,
                 port: int | None = None) -> None:
        self.dir = directory
        self.party = party
        if create:
            init_node(directory, party=party, name=f"{party} test node",
                      listen=f"127.0.0.1:{port or free_port()}", endpoints=endpoints or [],
                      db=db,
                      passphrase=PASSPHRASE)
        self.config = load_config(directory)
        self.port = self.config.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "node.log"
        self.wall: FakeWallClock | None = None

    def fake_wall_clock(self, offset_s: int = 0) -> FakeWallClock:
        """Run this node under libfaketime from its next start on, its wall clock at
        real time + ``offset_s`` until the returned clock is stepped."""
        self.wall = FakeWallClock(self.dir / "faketime.rc", offset_s)
        return self.wall

    def configure(self, section: str, **values: Any) -> None:
        """Change ``[section]`` settings in config.toml (before starting)."""
        import tomllib

        import tomli_w

        path = self.dir / "config.toml"
        data = tomllib.loads(path.read_text())
        data.setdefault(section, {}).update(values)
        path.write_text(tomli_w.dumps(data))
        self.config = load_config(self.dir)

    @classmethod
    def existing(cls, directory: Path, party: str) -> NodeProcess:
        """A node directory made elsewhere (e.g. by ``hotline init``)."""
        return cls(directory, party, None, create=False)

    # -- process control ----------------------------------------------------------------
    def start(self, *extra: str) -> NodeProcess:
        env = {**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE,
               **(self.wall.env() if self.wall is not None else {})}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hotline", "serve", "--dir", str(self.dir),
                 "--log-level", "info", *extra], env=env, stdout=log,
                stderr=subprocess.STDOUT)
        wait_until(self._healthy, START_TIMEOUT, what=f"{self.party} to start")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.party} exited with {self.proc.returncode}:\n"
                                 + self.log_path.read_text(errors="replace")[-3000:])
        try:
            return httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peer_parties(self) -> list[str]:
        """The parties the running node holds a link with now (its ``status``)."""
        r = self.api("GET", "/api/v1/status")
        assert r.status_code == 200, r.text
        return [p["party"] for p in r.json()["peers"]]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._exited()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._exited()

    def _exited(self) -> None:
        assert self.proc is not None
        if self.wall is not None:
            FakeWallClock.clean_up(self.proc.pid)
        self.proc = None

    # -- operator API -------------------------------------------------------------------
    @property
    def token(self) -> str:
        return (self.dir / TOKEN_NAME).read_text().strip()

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30.0, **kwargs)

    def send(self, to: str, texts: list[str]) -> list[dict[str, Any]]:
        response = self.api("POST", "/api/v1/messages", json={"to": to, "texts": texts})
        assert response.status_code == 201, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    def inbox(self) -> list[dict[str, Any]]:
        """Every released message, following the cursor through all pages."""
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            body = self.api("GET", "/api/v1/inbox", params={"after": after, "limit": 1000}).json()
            out.extend(body["messages"])
            if len(body["messages"]) < 1000:
                return out
            after = body["next_cursor"]

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = self.api("GET", "/api/v1/status").json()
        return body

    def peer_status(self, party: str) -> dict[str, Any]:
        peers: list[dict[str, Any]] = self.status()["peers"]
        return next(p for p in peers if p["party"] == party)

    # -- keys and database --------------------------------------------------------------
    def private_keys(self) -> PartyKeys:
        return unlock(self.dir / KEYSTORE_NAME, PASSPHRASE)

    def public_keys(self) -> PublicKeys:
        return read_public(self.dir / KEYSTORE_NAME)

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Read the node's own database directly (tests check what was really stored)."""
        from sqlalchemy import text

        engine = create_engine(self.config.db)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params).all())
        finally:
            engine.dispose()

    def log_lines(self, needle: str) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if needle in line]


def link(a: NodeProcess, b: NodeProcess) -> None:
    """Exchange and accept offers both ways, as two operators would."""
    offer_a = read_offer(make_link_offer(a.dir, PASSPHRASE)[0])
    offer_b = read_offer(make_link_offer(b.dir, PASSPHRASE)[0])
    accept_link(a.dir, offer_b)
    accept_link(b.dir, offer_a)
    for node, other in ((a, b), (b, a)):
        if node.running():  # it reads its links every few seconds: wait until it has
            wait_until(lambda n=node, o=other: o.party in n.peer_parties(),  # type: ignore[misc]
                       what=f"{node.party} to know its link with {other.party}")


@contextmanager
def nodes_on(kind: str, base: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Yield a factory of nodes on ``kind`` ("sqlite" or "postgresql"); clean up after."""
    made: list[NodeProcess] = []
    databases: list[str] = []

    def make(party: str, endpoints: list[str] | None = None,
             port: int | None = None) -> NodeProcess:
        db = None
        if kind == "postgresql":
            db = create_pg_database()
            databases.append(db)
        node = NodeProcess(base / party.lower(), party, db, endpoints=endpoints, port=port)
        made.append(node)
        return node

    try:
        yield make
    finally:
        for node in made:
            node.stop()
        for db in databases:
            drop_pg_database(db)
