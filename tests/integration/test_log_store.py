"""Log appends inside the node's writer: one write per transaction, nothing from a
rolled-back item or savepoint, and correct beside an offline process appending too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from hotline.log.verify import verify_database
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.log import Record
from hotline.store.migrate import upgrade


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = sqlite_url(tmp_path / "node.db")
    engine = create_engine(url)
    upgrade(engine)
    database = Database(engine, lambda exc: None, hooks=[log_store.HOOKS])
    database.start()
    yield database
    await database.stop()


def record(text: str) -> Record:
    return Record("test", {"text": text}, 1)


def bodies(conn: Connection) -> list[str]:
    import json

    return [json.loads(e.entry)["body"]["text"] for e in log_store.scan(conn)]


async def test_concurrent_writes_share_transactions_and_the_log_stays_whole(
        db: Database) -> None:
    await asyncio.gather(*(db.write(lambda conn, n=n: log_store.append(conn, [record(f"{n}")]))
                           for n in range(200)))
    report = await db.read(lambda conn: verify_database(conn, "X", {}))
    assert report.ok, report.problems
    assert report.size == 200
    assert sorted(await db.read(bodies), key=int) == [str(n) for n in range(200)]


async def test_entries_of_a_failed_item_or_savepoint_are_not_written(db: Database) -> None:
    def failing(conn: Connection) -> None:
        log_store.append(conn, [record("doomed")])
        raise ValueError("this item fails")

    def with_savepoint(conn: Connection) -> None:
        log_store.append(conn, [record("kept 1")])
        def undone() -> None:
            with log_store.savepoint(conn):
                log_store.append(conn, [record("taken back")])
                raise RuntimeError("undo")
        with pytest.raises(RuntimeError):
            undone()
        log_store.append(conn, [record("kept 2")])

    results = await asyncio.gather(
        db.write(lambda conn: log_store.append(conn, [record("before")])),
        db.write(failing), db.write(with_savepoint),
        db.write(lambda conn: log_store.append(conn, [record("after")])),
        return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert await db.read(bodies) == ["before", "kept 1", "kept 2", "after"]
    report = await db.read(lambda conn: verify_database(conn, "X", {}))
    assert report.ok, report.problems


async def test_an_offline_process_appending_beside_the_node_is_not_overwritten(
        db: Database) -> None:
    await db.write(lambda conn: log_store.append(conn, [record("node 1")]))
    offline = create_engine(str(db.engine.url))  # another engine: another process's view
    try:
        with offline.begin() as conn:
            log_store.append(conn, [record("offline")])
    finally:
        offline.dispose()
    await db.write(lambda conn: log_store.append(conn, [record("node 2")]))
    assert await db.read(bodies) == ["node 1", "offline", "node 2"]
    report = await db.read(lambda conn: verify_database(conn, "X", {}))
    assert report.ok, report.problems
