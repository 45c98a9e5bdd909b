"""The single writer: every write of the node, group-committed.

A durable commit costs an fsync. Running each operator request or inbound batch in its
own transaction would cap throughput at the disk's fsync rate, so concurrent work waits
in one queue and the writer commits whatever has gathered in one transaction. Each piece
of work is a function of the connection; if one fails, the batch is rolled back and its
pieces are re-run one by one, so a bad request never takes good ones down with it.

A failed COMMIT is different: the database may be in an unknown state, so the writer
reports it as fatal and the node stops (crash and recover), never retry-and-continue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("hotline.store")

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[Any]]
MAX_BATCH = 512


class WriterStopped(RuntimeError):
    """The writer is stopped (shutting down, or after a fatal commit error)."""


class Writer:
    def __init__(self, engine: AsyncEngine, on_fatal: Callable[[BaseException], None]) -> None:
        self._engine = engine
        self._on_fatal = on_fatal
        self._queue: asyncio.Queue[tuple[Work, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._in_progress: list[tuple[Work, asyncio.Future[Any]]] = []

    async def write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction; return its result once the commit is durable."""
        if self._stopped:
            raise WriterStopped("the store is not accepting writes")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((work, future))
        return await future

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        waiting = list(self._in_progress)
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for _, future in waiting:
            if not future.done():
                future.set_exception(WriterStopped("the store stopped before this write"))

    async def _run(self) -> None:
        async with self._engine.connect() as conn:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < MAX_BATCH and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                self._in_progress = batch
                try:
                    await self._run_batch(conn, batch)
                except Exception as exc:  # _CommitFailed, or a failure outside any work
                    cause = exc.cause if isinstance(exc, _CommitFailed) else exc
                    self._stopped = True
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(WriterStopped("commit failed"))
                    log.critical("commit failed; stopping the node: %s", cause)
                    self._on_fatal(cause)
                    return

    async def _run_batch(self, conn: AsyncConnection,
                         batch: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            await conn.begin()
            for work, _ in batch:
                results.append(await work(conn))
        except Exception:
            await self._rollback(conn)
            for item in batch:
                await self._run_alone(conn, item)
            return
        await self._commit(conn)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _run_alone(self, conn: AsyncConnection,
                         item: tuple[Work, asyncio.Future[Any]]) -> None:
        work, future = item
        try:
            await conn.begin()
            result = await work(conn)
        except Exception as exc:
            await self._rollback(conn)
            if not future.done():
                future.set_exception(exc)
            return
        await self._commit(conn)
        if not future.done():
            future.set_result(result)

    @staticmethod
    async def _rollback(conn: AsyncConnection) -> None:
        try:
            await conn.rollback()
        except Exception as exc:  # the connection is unusable: same as a failed commit
            raise _CommitFailed(exc) from exc

    @staticmethod
    async def _commit(conn: AsyncConnection) -> None:
        try:
            await conn.commit()
        except Exception as exc:
            raise _CommitFailed(exc) from exc


class _CommitFailed(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
