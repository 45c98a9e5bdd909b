"""The store's single group-committing writer thread on a real SQLite file (WAL,
synchronous=FULL)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import IntegrityError

from hotline.store.database import (
    MAX_BULK_WEIGHT,
    RETRIES,
    Database,
    RetryTransaction,
    WriterStopped,
)
from hotline.store.engine import create_engine, sqlite_url

# No test waits longer than this for a thread; a blocked work gives up after it too, so a
# broken writer fails the test instead of hanging it.
DEADLINE = 5.0


@dataclass
class Store:
    engine: Engine
    db: Database
    fatal: list[BaseException]
    commits: list[int]

    async def rows(self) -> dict[int, str]:
        """Read back through a separate connection: only committed rows are visible.

        Not through ``db.read``, so it also works after ``db.stop()``."""
        def query() -> dict[int, str]:
            with self.engine.connect() as conn:
                result = conn.execute(text("SELECT k, v FROM items ORDER BY k"))
                return {int(k): str(v) for k, v in result}

        return await asyncio.to_thread(query)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(sqlite_url(tmp_path / "writer.db"))
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE items (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
        commits.clear()
        fatal: list[BaseException] = []
        db = Database(engine, fatal.append)
        db.start()
        try:
            yield Store(engine, db, fatal, commits)
        finally:
            await db.stop()
        assert not fatal, fatal
    finally:
        engine.dispose()  # also closes connections opened by rows() after stop()


def insert(k: int, v: str | None = None) -> Callable[[Connection], str]:
    def work(conn: Connection) -> str:
        conn.execute(text("INSERT INTO items (k, v) VALUES (:k, :v)"),
                     {"k": k, "v": v or f"value {k}"})
        return f"caller {k}"
    return work


@dataclass
class Gate:
    """A write whose work holds the writer thread until ``release`` is set."""

    task: asyncio.Task[str]
    release: threading.Event


async def hold_the_writer(db: Database) -> Gate:
    """Occupy the writer thread with a blocking work; return once it is running, so that
    anything written from now on waits in the queue until the gate is released."""
    entered, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> str:
        entered.set()
        if not release.wait(DEADLINE):
            raise TimeoutError("the gate was never released")
        return "gate"

    task = asyncio.create_task(db.write(blocker))
    assert await asyncio.to_thread(entered.wait, DEADLINE), "the writer never ran the gate"
    return Gate(task, release)


async def write_as_one_batch(db: Database, works: list[Callable[[Connection], Any]]
                             ) -> list[Any]:
    """Write ``works`` concurrently while the writer thread is held, so that all of them
    are queued before it can drain any: it then takes them as one batch."""
    gate = await hold_the_writer(db)

    async def release() -> None:
        # gather starts its tasks in order and write() queues its work before its first
        # await, so by the time this runs every work above is in the queue.
        gate.release.set()

    try:
        *results, _ = await asyncio.gather(*(db.write(w) for w in works), release(),
                                           return_exceptions=True)
    finally:
        gate.release.set()
    assert await gate.task == "gate"
    return results


async def test_concurrent_writes_are_all_committed_and_answered_to_their_callers(
        store: Store) -> None:
    count = 300
    results = await asyncio.gather(*(store.db.write(insert(k)) for k in range(count)))
    assert results == [f"caller {k}" for k in range(count)]
    assert await store.rows() == {k: f"value {k}" for k in range(count)}

    def read_back(conn: Connection) -> int:
        return int(conn.execute(text("SELECT count(*) FROM items")).scalar_one())

    assert await store.db.read(read_back) == count
    # Group commit: concurrent work shares transactions (MAX_BATCH is 512).
    assert 1 <= len(store.commits) < count


async def test_writes_queued_behind_a_busy_writer_share_one_commit(store: Store) -> None:
    count = 300
    results = await write_as_one_batch(store.db, [insert(k) for k in range(count)])
    assert results == [f"caller {k}" for k in range(count)]
    assert await store.rows() == {k: f"value {k}" for k in range(count)}
    # One commit for the gate, one for the 300 writes that gathered behind it.
    assert len(store.commits) == 2, store.commits


async def test_writes_from_many_tasks_in_waves(store: Store) -> None:
    async def client(c: int) -> list[str]:
        out = []
        for i in range(20):
            out.append(await store.db.write(insert(c * 1000 + i)))
            if i % 3 == 0:
                await asyncio.sleep(0)
        return out

    answers = await asyncio.gather(*(client(c) for c in range(15)))
    for c, got in enumerate(answers):
        assert got == [f"caller {c * 1000 + i}" for i in range(20)]
    assert len(await store.rows()) == 15 * 20


async def test_bulk_work_waits_behind_the_rest_and_one_transaction_takes_a_bounded_share(
        store: Store) -> None:
    """Three bulk pieces of 150 messages, then a call's piece, all queued behind a busy
    writer: the call's piece is in the first transaction, and no transaction takes more
    than ``MAX_BULK_WEIGHT`` messages of bulk (so a call arriving meanwhile waits for one
    bulk piece at most, not for three)."""
    order: list[tuple[int, str]] = []  # (commit number when it ran, who)

    def piece(k: int, who: str) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            order.append((len(store.commits), who))
            return insert(k, who)(conn)
        return work

    weight = MAX_BULK_WEIGHT * 3 // 4
    gate = await hold_the_writer(store.db)
    bulk = [asyncio.create_task(store.db.write(piece(k, f"bulk {k}"), bulk=weight))
            for k in range(3)]
    call = asyncio.create_task(store.db.write(piece(9, "call")))
    await asyncio.sleep(0)  # every write is queued before the gate opens
    gate.release.set()
    assert await gate.task == "gate"
    assert await asyncio.gather(*bulk, call) == ["caller 0", "caller 1", "caller 2",
                                                "caller 9"]
    # the gate's transaction is commit 0; the call runs in the next, before any bulk,
    # and the bulk pieces take one transaction each, in the order they came
    assert order == [(1, "call"), (1, "bulk 0"), (2, "bulk 1"), (3, "bulk 2")], order
    assert await store.rows() == {0: "bulk 0", 1: "bulk 1", 2: "bulk 2", 9: "call"}


class Boom(Exception):
    pass


async def test_a_failing_work_gets_its_own_exception_and_the_others_commit(
        store: Store) -> None:
    await store.db.write(insert(10_000, "already there"))

    # The transaction each work first ran in: works in one batch share one transaction.
    first_run: dict[int, object] = {}

    def traced(k: int, work: Callable[[Connection], str]) -> Callable[[Connection], str]:
        def run(conn: Connection) -> str:
            first_run.setdefault(k, conn.get_transaction())
            return work(conn)
        return run

    def boom_after_insert(conn: Connection) -> str:
        conn.execute(text("INSERT INTO items (k, v) VALUES (7777, 'half-done')"))
        raise Boom("work 5 failed")

    works: list[Callable[[Connection], str]] = [insert(k) for k in range(10)]
    works[5] = boom_after_insert
    works[8] = insert(10_000, "duplicate key")  # fails inside the database
    results = await write_as_one_batch(store.db,
                                       [traced(k, w) for k, w in enumerate(works)])

    # The failure really happened inside a batch shared with good works.
    assert first_run[0] is not None
    assert all(first_run[k] is first_run[0] for k in range(6)), first_run

    assert isinstance(results[5], Boom)
    assert str(results[5]) == "work 5 failed"
    assert isinstance(results[8], IntegrityError)
    for k in (0, 1, 2, 3, 4, 6, 7, 9):
        assert results[k] == f"caller {k}"
    rows = await store.rows()
    assert rows == {**{k: f"value {k}" for k in (0, 1, 2, 3, 4, 6, 7, 9)},
                    10_000: "already there"}  # no 7777: the failed work left nothing behind

    # The writer goes on working after the failures.
    assert await store.db.write(insert(11)) == "caller 11"
    assert 11 in await store.rows()


async def test_a_transaction_that_read_stale_state_is_run_again_until_it_commits(
        store: Store) -> None:
    """Another process (a CLI command) changed what the transaction read: the writer rolls
    back and runs the work again, so the caller gets its result, not the race."""
    runs: list[int] = []

    def stale_twice(conn: Connection) -> str:
        runs.append(1)
        conn.execute(text("INSERT INTO items (k, v) VALUES (:k, 'try')"), {"k": len(runs)})
        if len(runs) < 3:
            raise RetryTransaction("the log grew in another process")
        return "done"

    assert await store.db.write(stale_twice) == "done"
    assert len(runs) == 3
    assert await store.rows() == {3: "try"}  # the two stale runs left nothing behind


async def test_a_transaction_stale_every_time_gives_up_with_the_error(store: Store) -> None:
    runs: list[int] = []

    def always_stale(conn: Connection) -> str:
        runs.append(1)
        raise RetryTransaction("stale")

    with pytest.raises(RetryTransaction):
        await store.db.write(always_stale)
    assert len(runs) == RETRIES + 1  # once in its batch, then RETRIES times alone
    assert await store.db.write(insert(1)) == "caller 1"  # the writer goes on


async def test_write_after_stop_raises_writer_stopped(store: Store) -> None:
    assert await store.db.write(insert(1)) == "caller 1"
    await store.db.stop()
    with pytest.raises(WriterStopped):
        await store.db.write(insert(2))
    assert await store.rows() == {1: "value 1"}


async def test_writes_still_queued_at_stop_are_failed_not_lost_silently(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path / "queued.db"))
    try:
        db = Database(engine, lambda exc: None)  # never started: work stays queued
        pending = [asyncio.create_task(db.write(insert(k))) for k in range(3)]
        await asyncio.sleep(0)
        await db.stop()
        _, waiting = await asyncio.wait(pending, timeout=DEADLINE)
        for task in waiting:
            task.cancel()
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert not waiting, "a write queued at stop() was never answered"
        assert all(isinstance(r, WriterStopped) for r in results), results
    finally:
        engine.dispose()


async def test_writes_in_flight_or_queued_at_stop_are_answered(store: Store) -> None:
    """stop() lets the writer thread finish the batch it is running (and, before it reads
    the stop marker, what was queued behind it): the caller of the work in progress gets
    its result, its row is committed, and nobody is left waiting."""
    started, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> str:
        started.set()
        if not release.wait(DEADLINE):
            raise TimeoutError("never released")
        return insert(1)(conn)

    in_flight = asyncio.create_task(store.db.write(slow))
    try:
        assert await asyncio.to_thread(started.wait, DEADLINE), "the writer never ran it"
        queued = [asyncio.create_task(store.db.write(insert(k))) for k in (2, 3, 4)]
        await asyncio.sleep(0)  # the three are in the queue now
        stopping = asyncio.create_task(store.db.stop())
        await asyncio.sleep(0.1)
        assert not stopping.done(), "stop() returned while a write was in progress"
        with pytest.raises(WriterStopped):
            await store.db.write(insert(5))  # no new work once stop() has begun
    finally:
        release.set()

    tasks = {in_flight, stopping, *queued}
    _, pending = await asyncio.wait(tasks, timeout=DEADLINE)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert not pending, "stop() or the caller of a write in flight at stop() never returned"

    assert stopping.result() is None
    assert in_flight.result() == "caller 1"  # the batch in progress was finished
    rows = await store.rows()
    assert rows[1] == "value 1"
    for k, task in zip((2, 3, 4), queued, strict=True):
        error = task.exception()
        if error is None:  # answered with its result: then it is durable
            assert task.result() == f"caller {k}"
            assert rows.get(k) == f"value {k}"
        else:  # answered with WriterStopped: then nothing of it is stored
            assert isinstance(error, WriterStopped), error
            assert k not in rows
    assert set(rows) <= {1, 2, 3, 4}


async def test_a_writer_that_cannot_connect_answers_and_reports_fatal(tmp_path: Path) -> None:
    reported = threading.Event()
    db = Database(create_engine(sqlite_url(tmp_path / "missing-dir" / "x.db")),
                  lambda _exc: reported.set())
    db.start()
    with pytest.raises(WriterStopped):
        await asyncio.wait_for(db.write(lambda conn: 1), 5)
    assert await asyncio.to_thread(reported.wait, 5)  # reported right after answering
    await db.stop()


async def test_bulk_mixed_with_a_full_batch_of_other_work_and_failures_is_all_answered(
        store: Store) -> None:
    """More than a batch of other work, and bulk pieces of every size (one heavier than
    a transaction's share alone, some failing), all queued behind a busy writer: no bulk
    piece is left waiting once the other work is gone (its wake-up was taken by a batch
    that had no room for it), each failing piece gets its own exception, the rest commit,
    and nothing is left counted in flight."""
    gate = await hold_the_writer(store.db)
    others = [asyncio.create_task(store.db.write(insert(k))) for k in range(600)]
    weights = [1, MAX_BULK_WEIGHT // 2 + 1, MAX_BULK_WEIGHT * 2]
    bulk = []
    for k in range(30):
        work = _boom if k % 7 == 3 else insert(1000 + k)
        bulk.append(asyncio.create_task(store.db.write(work, bulk=weights[k % 3])))
    await asyncio.sleep(0)  # all queued before the gate opens
    gate.release.set()
    assert await gate.task == "gate"
    _, waiting = await asyncio.wait([*others, *bulk], timeout=DEADLINE)
    for task in waiting:
        task.cancel()
    assert not waiting, f"{len(waiting)} write(s) never answered"
    for k, task in enumerate(bulk):
        if k % 7 == 3:
            assert isinstance(task.exception(), Boom)
        else:
            assert task.result() == f"caller {1000 + k}"
    rows = await store.rows()
    assert set(rows) == set(range(600)) | {1000 + k for k in range(30) if k % 7 != 3}
    assert store.db.in_flight == 0


def _boom(conn: Connection) -> str:
    raise Boom("bulk piece fails")
