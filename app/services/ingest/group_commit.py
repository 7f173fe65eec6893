"""Group commit: the work of every request waiting at one moment, written in one transaction.

Generic over the work item: the owner gives the write (one unit of work for a list of
items: it opens and commits its own transaction) and each item's size in rows. A request
is answered only after the transaction holding its rows has committed; if a shared
transaction fails, its items are retried one by one so a bad one fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from app.errors import ServiceUnavailable
from app.storage.db import Database

log = logging.getLogger("qc_collector.ingest")

Item = TypeVar("Item")


@dataclass(slots=True)
class _Waiting(Generic[Item]):
    item: Item
    size: int
    future: asyncio.Future[None] = field(repr=False)


class GroupCommitter(Generic[Item]):
    """Coalesces concurrent writes of this process into shared transactions."""

    def __init__(self, *, db: Database,
                 write: Callable[[list[Item]], Awaitable[None]],
                 size: Callable[[Item], int], max_rows: int = 5000) -> None:
        self._db = db
        self._write = write
        self._size = size
        self._max_rows = max_rows
        self._pending: list[_Waiting[Item]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for waiting in self._pending:
            if not waiting.future.done():
                waiting.future.set_exception(RuntimeError("shutting down"))

    async def submit(self, item: Item) -> None:
        """Returns once the item is committed; raises if it could not be."""
        waiting = _Waiting(item, self._size(item), asyncio.get_running_loop().create_future())
        self._pending.append(waiting)
        self._wakeup.set()
        await asyncio.shield(waiting.future)

    def _take(self) -> list[_Waiting[Item]]:
        taken: list[_Waiting[Item]] = []
        rows = 0
        while self._pending and (not taken or rows + self._pending[0].size <= self._max_rows):
            waiting = self._pending.pop(0)
            taken.append(waiting)
            rows += waiting.size
        return taken

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._flush(self._take())

    async def _commit(self, items: list[Item]) -> None:
        # nothing of a rolled-back write is kept: a deadlock's victim simply runs again
        await self._db.idempotent(lambda: self._write(items))

    async def _flush(self, taken: list[_Waiting[Item]]) -> None:
        try:
            await self._commit([w.item for w in taken])
        except ServiceUnavailable as exc:
            # the database, not a request, failed: one by one would only wait longer.
            # Each waiting request gets its own 503.
            log.warning("ingest transaction of %d requests failed: database unavailable",
                        len(taken))
            for waiting in taken:
                _settle(waiting, ServiceUnavailable(exc.detail, retry_after=exc.retry_after))
            return
        except Exception as exc:
            if len(taken) == 1:
                _settle(taken[0], exc)
                return
            log.warning("shared ingest transaction failed (%s); retrying %d requests one by one",
                        exc.__class__.__name__, len(taken))
            for waiting in taken:
                try:
                    await self._commit([waiting.item])
                except Exception as own:
                    _settle(waiting, own)
                else:
                    _settle(waiting, None)
            return
        for waiting in taken:
            _settle(waiting, None)


def _settle(waiting: _Waiting[Item], exc: BaseException | None) -> None:
    if waiting.future.done():
        return
    if exc is None:
        waiting.future.set_result(None)
    else:
        waiting.future.set_exception(exc)
