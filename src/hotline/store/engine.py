"""Engine set-up for both databases, with the durability settings the design requires.

SQLite: WAL with ``synchronous=FULL`` (a commit is on disk when it returns), foreign
keys on, a busy timeout for the offline CLI writing beside a running node.
PostgreSQL (psycopg 3): ``synchronous_commit=on``.

Engines are synchronous: database work runs as whole functions on the store's threads
(:mod:`hotline.store.database`), which costs one thread hand-off per transaction instead
of several per statement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from hotline.errors import ConfigError


def driver_url(url: str) -> str:
    """Map a user-facing URL (``sqlite:///x.db``, ``postgresql://...``) to its driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("bad-db-url", f"database URL {url!r} is not a URL",
                          hint="use sqlite:///PATH or postgresql://USER@HOST/DB") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError("bad-db-url", "SQLite needs a file path: sqlite:///PATH")
        return str(parsed.set(drivername="sqlite+pysqlite"))
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ConfigError("bad-db-url", f"unsupported database {backend!r}",
                      hint="use sqlite:///PATH or postgresql://USER@HOST/DB")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(url: str) -> Engine:
    target = driver_url(url)
    if target.startswith("sqlite"):
        engine = sa_create_engine(target, pool_size=4, max_overflow=4,
                                  connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa_create_engine(target, pool_size=4, max_overflow=4,
                            connect_args={"options": "-c synchronous_commit=on"})
