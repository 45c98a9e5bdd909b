"""The single group-committing writer on a real SQLite file (WAL, synchronous=FULL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hotline.store.engine import create_engine, sqlite_url
from hotline.store.writer import Writer, WriterStopped


@dataclass
class Store:
    engine: AsyncEngine
    writer: Writer
    fatal: list[BaseException]
    commits: list[int]

    async def rows(self) -> dict[int, str]:
        """Read back through a separate connection: only committed rows are visible."""
        async with self.engine.connect() as conn:
            result = await conn.execute(text("SELECT k, v FROM items ORDER BY k"))
            return {int(k): str(v) for k, v in result}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(sqlite_url(tmp_path / "writer.db"))
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda _conn: commits.append(1))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE items (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
        commits.clear()
        fatal: list[BaseException] = []
        writer = Writer(engine, fatal.append)
        writer.start()
        try:
            yield Store(engine, writer, fatal, commits)
        finally:
            await writer.stop()
        assert not fatal, fatal
    finally:
        await engine.dispose()


def insert(k: int, v: str | None = None) -> Callable[[AsyncConnection], Awaitable[str]]:
    async def work(conn: AsyncConnection) -> str:
        await conn.execute(text("INSERT INTO items (k, v) VALUES (:k, :v)"),
                           {"k": k, "v": v or f"value {k}"})
        return f"caller {k}"
    return work


async def test_concurrent_writes_are_all_committed_and_answered_to_their_callers(
        store: Store) -> None:
    count = 300
    results = await asyncio.gather(*(store.writer.write(insert(k)) for k in range(count)))
    assert results == [f"caller {k}" for k in range(count)]
    assert await store.rows() == {k: f"value {k}" for k in range(count)}
    # Group commit: concurrent work shares transactions (MAX_BATCH is 512).
    assert 1 <= len(store.commits) < count


async def test_writes_from_many_tasks_in_waves(store: Store) -> None:
    async def client(c: int) -> list[str]:
        out = []
        for i in range(20):
            out.append(await store.writer.write(insert(c * 1000 + i)))
            if i % 3 == 0:
                await asyncio.sleep(0)
        return out

    answers = await asyncio.gather(*(client(c) for c in range(15)))
    for c, got in enumerate(answers):
        assert got == [f"caller {c * 1000 + i}" for i in range(20)]
    assert len(await store.rows()) == 15 * 20


class Boom(Exception):
    pass


async def test_a_failing_work_gets_its_own_exception_and_the_others_commit(
        store: Store) -> None:
    await store.writer.write(insert(10_000, "already there"))

    async def boom_after_insert(conn: AsyncConnection) -> str:
        await conn.execute(text("INSERT INTO items (k, v) VALUES (7777, 'half-done')"))
        raise Boom("work 5 failed")

    works: list[Callable[[AsyncConnection], Awaitable[Any]]] = [insert(k) for k in range(10)]
    works[5] = boom_after_insert
    works[8] = insert(10_000, "duplicate key")  # fails inside the database
    results = await asyncio.gather(*(store.writer.write(w) for w in works),
                                   return_exceptions=True)

    assert isinstance(results[5], Boom)
    assert str(results[5]) == "work 5 failed"
    assert isinstance(results[8], IntegrityError)
    for k in (0, 1, 2, 3, 4, 6, 7, 9):
        assert results[k] == f"caller {k}"
    rows = await store.rows()
    assert rows == {**{k: f"value {k}" for k in (0, 1, 2, 3, 4, 6, 7, 9)},
                    10_000: "already there"}  # no 7777: the failed work left nothing behind

    # The writer goes on working after the failures.
    assert await store.writer.write(insert(11)) == "caller 11"
    assert 11 in await store.rows()


async def test_write_after_stop_raises_writer_stopped(store: Store) -> None:
    assert await store.writer.write(insert(1)) == "caller 1"
    await store.writer.stop()
    with pytest.raises(WriterStopped):
        await store.writer.write(insert(2))
    assert await store.rows() == {1: "value 1"}


async def test_writes_still_queued_at_stop_are_failed_not_lost_silently(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path / "queued.db"))
    try:
        writer = Writer(engine, lambda exc: None)  # never started: work stays queued
        pending = [asyncio.create_task(writer.write(insert(k))) for k in range(3)]
        await asyncio.sleep(0)
        await writer.stop()
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, WriterStopped) for r in results), results
    finally:
        await engine.dispose()


async def test_a_write_in_flight_at_stop_is_answered(store: Store) -> None:
    started = asyncio.Event()

    async def slow(conn: AsyncConnection) -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "done"

    task = asyncio.create_task(store.writer.write(slow))
    await started.wait()
    await store.writer.stop()
    done, _ = await asyncio.wait({task}, timeout=1.5)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert done, "the caller of a write in flight at stop() was never answered"
    error = task.exception()
    assert error is None or isinstance(error, WriterStopped), error
