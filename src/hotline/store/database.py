"""The node's database: reads on a small thread pool, every write on one writer thread.

A durable commit costs an fsync, so concurrent writes wait in one queue and the writer
commits whatever has gathered in one transaction (group commit). Each piece of work is a
plain function of a connection, run whole on the database thread: one thread hand-off
per transaction, not several per statement. If one piece fails, the batch is rolled back
and its pieces are re-run one by one, so a bad request never takes good ones down.

Bulk work (operators' feeds on the bulk lane, docs/protocol.md "Lanes") waits apart and
is taken only after every other piece that has gathered, and at most
:data:`MAX_BULK_WEIGHT` messages of it a transaction: a call's write never waits behind
more than one transaction's worth of bulk, however much bulk is queued (issue 17).

A failed COMMIT (or ROLLBACK) is different: the database may be in an unknown state, so
the writer reports it as fatal and the node stops (crash and recover), never
retry-and-continue.

:attr:`Database.in_flight` counts the pieces of work handed to the threads whose answer
the event loop has not had yet. Nothing in the node reads it; a virtual-time event loop
does (``tests/sim/harness.py``, ``docs/time.md``): while it is above zero the loop waits
for real instead of jumping ahead, so database work costs time the way it does in
production rather than none.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

log = logging.getLogger("hotline.store")

T = TypeVar("T")
Work = Callable[[Connection], Any]
MAX_BATCH = 512
#: the most bulk messages one transaction takes (a piece heavier alone is taken alone)
MAX_BULK_WEIGHT = 200
READ_THREADS = 2


#: How many times one transaction is run again when it raises :class:`RetryTransaction`.
RETRIES = 8


class RetryTransaction(Exception):
    """Raised by a transaction's work or hooks when it read state that another process
    changed meanwhile (the log's tree state, say): the writer rolls back and runs the
    work again, up to :data:`RETRIES` times, before handing the error to the caller."""


class WriterStopped(RuntimeError):
    """The writer is stopped (shutting down, or after a fatal commit error)."""


class _CommitFailed(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class _Item:
    work: Work
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    #: bulk messages this piece writes (0: not bulk)
    weight: int = 0


_STOP = object()
_BULK = object()  # a wake-up: a bulk piece waits in ``Database._bulk``


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


@dataclass(frozen=True)
class TransactionHooks:
    """Work that belongs to every write transaction rather than to one work item: set up
    at the start, completed just before the commit (an exception there fails the batch
    like a failing work item), dropped after a rollback."""

    begin: Callable[[Connection], None]
    before_commit: Callable[[Connection], None]
    after_rollback: Callable[[Connection], None]


class Database:
    def __init__(self, engine: Engine, on_fatal: Callable[[BaseException], None],
                 hooks: Sequence[TransactionHooks] = ()) -> None:
        self.engine = engine
        self._on_fatal = on_fatal
        self._hooks = tuple(hooks)
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._bulk: deque[_Item] = deque()
        self._thread: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="db-read")
        self._stopped = False
        self._in_progress: list[_Item] = []
        #: work handed to a database thread and not yet answered (event loop thread only)
        self.in_flight = 0

    def _settled(self, _future: asyncio.Future[Any]) -> None:
        self.in_flight -= 1

    # -- reads ------------------------------------------------------------------------
    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` on a pooled connection in a reader thread."""
        def run() -> T:
            with self.engine.connect() as conn:
                return work(conn)

        if self._stopped:
            raise WriterStopped("the store is stopped")
        future = asyncio.get_running_loop().run_in_executor(self._readers, run)
        self.in_flight += 1
        future.add_done_callback(self._settled)
        return await future

    # -- writes -----------------------------------------------------------------------
    async def write(self, work: Callable[[Connection], T], *, bulk: int = 0) -> T:
        """Run ``work`` in a transaction; return its result once the commit is durable.
        ``bulk``: how many bulk-lane messages it writes; such work is taken after the
        rest (module docstring)."""
        if self._stopped:
            raise WriterStopped("the store is not accepting writes")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.in_flight += 1
        future.add_done_callback(self._settled)
        item = _Item(work, future, loop, max(0, bulk))
        if item.weight:
            self._bulk.append(item)  # before its wake-up, so the writer finds it
            self._queue.put(_BULK)
        else:
            self._queue.put(item)
        if self._stopped:  # raced with a stop or a failure that may have drained already
            self._answer_leftovers([], WriterStopped("the store is not accepting writes"))
        return await future

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopped = True
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None
        self._answer_leftovers(list(self._in_progress),
                               WriterStopped("the store stopped before this write"))
        await asyncio.get_running_loop().run_in_executor(None, self._readers.shutdown)
        self.engine.dispose()

    def _run(self) -> None:
        try:
            with self.engine.connect() as conn:
                self._serve(conn)
        except BaseException as exc:  # no connection, or a failure outside any work
            self._fail(exc)

    def _serve(self, conn: Connection) -> None:
        while True:
            # a batch takes a bounded share of the bulk, and the wake-ups of what it left
            # may all be gone: bulk still waiting is served without waiting for one
            first = _BULK if self._bulk and self._queue.empty() else self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            items = [i for i in batch if isinstance(i, _Item)]
            items += self._take_bulk(MAX_BATCH - len(items))
            if not items:  # wake-ups of bulk pieces an earlier batch took
                continue
            self._in_progress = items
            try:
                outcomes = self._run_batch(conn, items)
            except _CommitFailed as exc:
                self._fail(exc.cause)
                return
            self._resolve(items, outcomes)
            self._in_progress = []

    def _take_bulk(self, room: int) -> list[_Item]:
        """Waiting bulk pieces, oldest first, up to :data:`MAX_BULK_WEIGHT` messages
        (at least one piece, if any waits and there is ``room``)."""
        taken: list[_Item] = []
        weight = 0
        while self._bulk and len(taken) < room:
            if taken and weight + self._bulk[0].weight > MAX_BULK_WEIGHT:
                break
            item = self._bulk.popleft()
            taken.append(item)
            weight += item.weight
        return taken

    def _fail(self, cause: BaseException) -> None:
        """The database is unusable: answer everyone, then stop the node."""
        self._stopped = True
        self._answer_leftovers(list(self._in_progress),
                               WriterStopped(f"database failure: {cause}"))
        log.critical("database failure; stopping the node: %s", cause)
        self._on_fatal(cause)

    def _answer_leftovers(self, items: list[_Item], error: WriterStopped) -> None:
        """Fail ``items`` and everything still queued (safe from any thread; a future
        already answered is left alone). A stop request found in the queue is put back
        for the writer thread."""
        saw_stop = False
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _STOP:
                saw_stop = True
            elif isinstance(item, _Item):
                items.append(item)
        while self._bulk:
            try:
                items.append(self._bulk.popleft())
            except IndexError:  # taken by the writer meanwhile
                break
        if saw_stop:
            self._queue.put(_STOP)
        self._resolve(items, [(i.future, False, error) for i in items])

    @staticmethod
    def _resolve(items: list[_Item], outcomes: list[tuple[asyncio.Future[Any], bool, Any]]
                 ) -> None:
        """Hand results back to their event loops: one wake-up per loop per batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for item, outcome in zip(items, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append(outcome)
        for loop, group in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, group)

    def _run_batch(self, conn: Connection, items: list[_Item]
                   ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        results: list[Any] = []
        try:
            self._begin(conn)
            for item in items:
                results.append(item.work(conn))
            for hook in self._hooks:
                hook.before_commit(conn)
        except Exception:
            self._rollback(conn)
            return [self._run_alone(conn, item) for item in items]
        self._commit(conn)
        return [(item.future, True, result) for item, result in zip(items, results, strict=True)]

    def _run_alone(self, conn: Connection, item: _Item) -> tuple[asyncio.Future[Any], bool, Any]:
        for attempt in range(1, RETRIES + 1):
            try:
                self._begin(conn)
                result = item.work(conn)
                for hook in self._hooks:
                    hook.before_commit(conn)
            except RetryTransaction as exc:
                # another process (a CLI command on the same database) changed what this
                # transaction read: work functions may be run again, so run it again
                self._rollback(conn)
                if attempt == RETRIES:
                    return (item.future, False, exc)
                log.info("transaction retried (%d/%d): %s", attempt, RETRIES, exc)
                continue
            except Exception as exc:
                self._rollback(conn)
                return (item.future, False, exc)
            self._commit(conn)
            return (item.future, True, result)
        raise AssertionError("unreachable")  # the loop always returns

    def _begin(self, conn: Connection) -> None:
        conn.begin()
        for hook in self._hooks:
            hook.begin(conn)

    def _rollback(self, conn: Connection) -> None:
        try:
            conn.rollback()
        except Exception as exc:  # the connection is unusable: same as a failed commit
            raise _CommitFailed(exc) from exc
        for hook in self._hooks:
            hook.after_rollback(conn)

    @staticmethod
    def _commit(conn: Connection) -> None:
        try:
            conn.commit()
        except Exception as exc:
            raise _CommitFailed(exc) from exc
