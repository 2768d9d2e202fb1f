"""Local SQLite files (and ``:memory:``) without blocking the event loop.

One persistent sqlite3 connection per :class:`~per_user_db.Database`, owned by one
worker thread (:class:`~per_user_db._transports._sqlite.SqliteWorker`): ``:memory:`` keeps its
tables, statements never run on the event loop, and a whole pipeline is one job on the
thread. The same request executor serves the local protocol server, so a pipeline means
the same thing here as over HTTP: it starts with foreign keys on and ends rolled back if
it left a transaction open (a closed stream).

A connection is one stream at a time: an interactive transaction owns it until it ends;
other callers wait for it, up to ``busy_timeout``, then get ``SQLITE_BUSY``, as they
would from SQLite itself.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, TypeVar

from ..core._apply import is_busy
from ..core._hrana import (
    BatchRequest,
    BatchResponse,
    CloseRequest,
    ExecuteRequest,
    HranaError,
    SequenceRequest,
    StoreSqlRequest,
    StreamError,
    StreamOk,
)
from ._base import DatabaseError
from ._hrana_sqlite import run_stream_requests
from ._sqlite import SqliteWorker

T = TypeVar("T")

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence

    from ..core._hrana import StreamRequest, StreamResult
    from ..core._urls import DatabaseUrl

__all__ = ["LocalTransport"]


def _mentions_foreign_keys(requests: Sequence[StreamRequest]) -> bool:
    """Whether any SQL in ``requests`` could switch foreign keys (a PRAGMA names them)."""
    for request in requests:
        match request:
            case ExecuteRequest(stmt=stmt):
                texts: tuple[str | None, ...] = (stmt.sql,)
            case BatchRequest(batch=batch):
                texts = tuple(step.stmt.sql for step in batch.steps)
            case SequenceRequest(sql=sql) | StoreSqlRequest(sql=sql):
                texts = (sql,)
            case _:
                texts = ()
        if any(text and "foreign_keys" in text.lower() for text in texts):
            return True
    return False


INLINE_BUDGET = 0.002
"""Seconds a restartable pipeline may run on the event loop's thread before it is
interrupted and sent to the worker thread instead: the longest stall it can cause."""
_MAX_SLOW = 256


def _sql_key(requests: Sequence[StreamRequest]) -> tuple[str | None, ...]:
    texts: list[str | None] = []
    for request in requests:
        match request:
            case ExecuteRequest(stmt=stmt):
                texts.append(stmt.sql)
            case BatchRequest(batch=batch):
                texts.extend(step.stmt.sql for step in batch.steps)
            case _:
                texts.append(None)
    return tuple(texts)


def _met_a_lock(results: Sequence[StreamResult]) -> bool:
    """Whether any statement failed because another connection held a lock."""
    for result in results:
        match result:
            case StreamError(error=error):
                errors: tuple[HranaError | None, ...] = (error,)
            case StreamOk(response=BatchResponse(result=batch)):
                errors = batch.step_errors
            case _:
                errors = ()
        if any(e is not None and is_busy(e.code, e.message) for e in errors):
            return True
    return False


class LocalTransport:
    def __init__(self, worker: SqliteWorker, url: DatabaseUrl, *, busy_timeout: float) -> None:
        self._worker = worker
        self._url = url
        self._busy_timeout = busy_timeout
        self._owner = asyncio.Lock()
        # The connection opens with foreign keys on; only SQL that names the pragma can
        # turn them off, so a fresh stream re-asserts them only after such SQL ran.
        self._foreign_keys_touched = False
        # SQL that outlasted the inline budget once: it goes to the worker from then on.
        self._slow: OrderedDict[tuple[str | None, ...], None] = OrderedDict()

    def __repr__(self) -> str:
        return f"<LocalTransport {self._url.display}>"

    @classmethod
    async def open(cls, url: DatabaseUrl, *, busy_timeout: float) -> LocalTransport:
        """Open the file (raises ``sqlite3.Error`` if SQLite cannot)."""
        worker = await SqliteWorker.open(url.endpoint, busy_timeout=busy_timeout)
        return cls(worker, url, busy_timeout=busy_timeout)

    @property
    def supports_v3(self) -> bool:
        return True

    async def acquire(self) -> None:
        try:
            async with asyncio.timeout(self._busy_timeout):
                await self._owner.acquire()
        except TimeoutError:
            raise DatabaseError(
                f"{self._url.display} is held by an open transaction "
                f"(waited {self._busy_timeout} s)",
                "SQLITE_BUSY",
            ) from None

    def release(self) -> None:
        self._owner.release()

    async def run(
        self,
        requests: Sequence[StreamRequest],
        stored: dict[int, str],
        *,
        opens: bool,
        closes: bool,
    ) -> tuple[StreamResult, ...]:
        """Run ``requests`` in one job; ``opens``/``closes`` mark a stream's first/last."""

        if _mentions_foreign_keys(requests):
            self._foreign_keys_touched = True

        def job(conn: sqlite3.Connection) -> tuple[StreamResult, ...]:
            if opens:
                self._reset(conn)
            try:
                return run_stream_requests(conn, requests, stored)
            finally:
                if closes:
                    self._reset(conn)

        return await self._worker.run(job)

    def _reset(self, conn: sqlite3.Connection) -> None:
        # What a fresh stream looks like: no transaction left over, foreign keys on.
        if conn.in_transaction:
            conn.rollback()
        if self._foreign_keys_touched:
            conn.execute("PRAGMA foreign_keys = ON")
            self._foreign_keys_touched = False

    async def pipeline(
        self, requests: Sequence[StreamRequest], *, restartable: bool = False
    ) -> tuple[StreamResult, ...]:
        if restartable and not self._owner.locked():
            done = self._run_inline(requests)
            if done is not None:
                return done
        await self.acquire()
        try:
            return await self.run(requests, {}, opens=True, closes=True)
        finally:
            self.release()

    def _run_inline(self, requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...] | None:
        """The pipeline's results if it ran on the loop's thread within the budget, else
        None (it ran not at all, or was interrupted and undone, or met a lock)."""
        key = _sql_key(requests)
        if key in self._slow:
            self._slow.move_to_end(key)
            return None

        def job(conn: sqlite3.Connection) -> tuple[StreamResult, ...]:
            self._reset(conn)
            try:
                return run_stream_requests(conn, requests, {})
            finally:
                self._reset(conn)

        if not self._worker.idle:
            return None
        if _mentions_foreign_keys(requests):
            self._foreign_keys_touched = True
        results = self._worker.run_inline(job, budget=INLINE_BUDGET)
        if results is None:  # interrupted: undone by SQLite
            self._slow[key] = None  # next time, straight to the worker
            if len(self._slow) > _MAX_SLOW:
                self._slow.popitem(last=False)
            return None
        if _met_a_lock(results):
            return None  # nothing ran: the worker runs it again and waits for the lock
        return results

    async def run_sqlite(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the raw sqlite3 connection, on its thread, owning the connection
        (for the test kit's template copies; not for application code)."""
        await self.acquire()
        try:
            return await self._worker.run(fn)
        finally:
            self.release()

    def stream(self) -> LocalStream:
        return LocalStream(self)

    async def close(self) -> None:
        await self._worker.close()


class LocalStream:
    """Owns the connection from its first request until it is closed.

    Its requests run one at a time (like a server's stream); a request that waited while
    the stream was closed fails instead of taking the connection again.
    """

    def __init__(self, transport: LocalTransport) -> None:
        self._transport = transport
        self._stored: dict[int, str] = {}
        self._owning = False
        self._closed = False
        self._lock = asyncio.Lock()

    async def send(self, requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
        async with self._lock:
            if self._closed:
                raise DatabaseError("the stream is closed", "STREAM_CLOSED")
            first = not self._owning
            if first:
                await self._transport.acquire()
                self._owning = True
            closing = bool(requests) and isinstance(requests[-1], CloseRequest)
            try:
                return await self._transport.run(
                    requests, self._stored, opens=first, closes=closing
                )
            finally:
                if closing:
                    self.abandon()

    async def close(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owning:
                self._owning = False
                try:
                    await self._transport.run([], {}, opens=False, closes=True)
                finally:
                    self._transport.release()

    def abandon(self) -> None:
        # The next owner starts with a reset, which rolls back what this stream left.
        self._closed = True
        if self._owning:
            self._owning = False
            self._transport.release()
