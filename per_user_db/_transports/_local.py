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
from typing import TYPE_CHECKING, TypeVar

from ..core._hrana import (
    BatchRequest,
    CloseRequest,
    ExecuteRequest,
    SequenceRequest,
    StoreSqlRequest,
)
from ._base import DatabaseError
from ._sqlite import SqliteWorker, run_stream_requests

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


class LocalTransport:
    def __init__(self, worker: SqliteWorker, url: DatabaseUrl, *, busy_timeout: float) -> None:
        self._worker = worker
        self._url = url
        self._busy_timeout = busy_timeout
        self._owner = asyncio.Lock()
        # The connection opens with foreign keys on; only SQL that names the pragma can
        # turn them off, so a fresh stream re-asserts them only after such SQL ran.
        self._foreign_keys_touched = False

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

        def reset(conn: sqlite3.Connection) -> None:
            # What a fresh stream looks like: no transaction left over, foreign keys on.
            if conn.in_transaction:
                conn.rollback()
            if self._foreign_keys_touched:
                conn.execute("PRAGMA foreign_keys = ON")
                self._foreign_keys_touched = False

        def job(conn: sqlite3.Connection) -> tuple[StreamResult, ...]:
            if opens:
                reset(conn)
            try:
                return run_stream_requests(conn, requests, stored)
            finally:
                if closes:
                    reset(conn)

        return await self._worker.run(job)

    async def pipeline(self, requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
        await self.acquire()
        try:
            return await self.run(requests, {}, opens=True, closes=True)
        finally:
            self.release()

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
